"""Reports: teaching-set grids, accuracy charts, one self-contained HTML page."""

from .html import write_report

__all__ = ["write_report"]

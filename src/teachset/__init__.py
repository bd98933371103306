"""teachset: small teaching sets that teach people the difference between image classes."""

__version__ = "0.1.0"

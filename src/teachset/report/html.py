"""One self-contained HTML report of a run: teaching sets as grids (one row per class, as the
paper's Fig. 2A-D) and accuracy per method and student with 95% intervals (Fig. 2E)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_write_text  # noqa: E402
from ..errors import TeachsetError  # noqa: E402
from ..evaluate import format_table  # noqa: E402
from ..imaging import png_bytes  # noqa: E402
from ..teaching_set import TeachingSet  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left} th{background:#f4f4f4}
.set{margin:1.2rem 0;padding:.6rem 1rem;border:1px solid #ddd;border-radius:6px}
.row{display:flex;align-items:center;gap:6px;margin:4px 0} .label{width:9rem;font-weight:600}
.row img{width:88px;height:88px;image-rendering:pixelated;border:1px solid #999}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
"""


def _png_data_uri(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()


def teaching_set_html(ts: TeachingSet, title: str) -> str:
    rows = []
    for c, members in enumerate(ts.per_class()):
        cells = "".join(
            f'<img src="{_png_data_uri(ts.images[i])}" title="{html.escape(str((ts.source_ids or [None] * len(ts))[i] or "generated"))}" alt="">'
            for i in members
        )
        rows.append(f'<div class="row"><span class="label">{html.escape(ts.class_names[c])}</span>{cells}</div>')
    return f'<div class="set"><h3>{html.escape(title)}</h3>{"".join(rows)}</div>'


def accuracy_chart_svg(summary: list[dict], majority: float | None) -> str:
    methods = list(dict.fromkeys(r["method"] for r in summary))
    students = list(dict.fromkeys(r["student"] for r in summary))
    cell = {(r["method"], r["student"]): r for r in summary}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(methods) + 2) + 2.2, 3.6))
    width = 0.8 / len(students)
    x = np.arange(len(methods))
    for j, s in enumerate(students):
        means = [cell[m, s]["mean"] if (m, s) in cell else np.nan for m in methods]
        err = [[(cell[m, s]["mean"] - cell[m, s]["ci_low"]) if (m, s) in cell and cell[m, s]["ci_low"] is not None else 0 for m in methods],
               [(cell[m, s]["ci_high"] - cell[m, s]["mean"]) if (m, s) in cell and cell[m, s]["ci_high"] is not None else 0 for m in methods]]
        ax.bar(x + (j - (len(students) - 1) / 2) * width, means, width, yerr=err, capsize=3, label=f"{s.upper()} student")
    if majority is not None:
        ax.axhline(majority, color="k", linestyle="--", linewidth=1, label="always the majority class")
    ax.set_xticks(x, methods)
    ax.set_ylabel("accuracy on the dataset\n(teaching images removed)")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("accuracy per method and student, mean and 95% interval", fontsize=10)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def write_report(results_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Read a results.json written by `teachset evaluate` or `teachset demo`, write report.html beside it."""
    results_path = Path(results_path)
    if results_path.is_dir():
        results_path = results_path / "results.json"
    if not results_path.is_file():
        raise TeachsetError(f"no results at '{results_path}'; run `teachset evaluate` or `teachset demo` first")
    results = json.loads(results_path.read_text())
    root = results_path.parent
    summary = results["summary"]
    sets_html = []
    shown = set()
    for row in results["rows"]:
        if row["method"] in shown or not row["teaching_set"]:
            continue
        shown.add(row["method"])
        path = Path(row["teaching_set"])
        ts = TeachingSet.load(path if path.is_absolute() else root / path)
        sets_html.append(teaching_set_html(ts, f"{row['method']} (seed {ts.seed})"))
    dataset = results.get("dataset", {})
    options = results.get("options", {})
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>teachset report</title><style>{STYLE}</style></head><body>
<h1>teachset report</h1>
<p class="muted">{html.escape(dataset.get('description', ''))}<br>dataset fingerprint {html.escape(str(dataset.get('fingerprint', '')))}
 &middot; features {html.escape(str(results.get('extractor', '')))} &middot; teachset {html.escape(str(results.get('code_version', '')))}</p>
<h2>How well each teaching set teaches proxy students</h2>
{accuracy_chart_svg(summary, results.get('majority_rate'))}
<pre>{html.escape(format_table(summary))}</pre>
<p class="muted">Each value: a teaching set made with one seed, a fresh student trained on it with one seed, scored on every
image of the dataset except the teaching images. n per cell: {', '.join(sorted({str(r['n']) for r in summary}))}.</p>
<h2>Teaching sets</h2>
{''.join(sets_html)}
<h2>Options</h2>
<pre>{html.escape(json.dumps(options, indent=2))}</pre>
</body></html>
"""
    out_path = Path(out_path) if out_path else root / "report.html"
    atomic_write_text(out_path, page)
    return out_path

"""One self-contained HTML report of a run. It leads with what a person could learn: accuracy of
fresh students on held-out images, the teacher's own student marked and the transfer students
beside it; then how real the teaching images look; then the teaching sets themselves (one row
per class, as the paper's Fig. 2A-D) with each image's realism under it."""

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
from ..errors import OptionError, TeachsetError  # noqa: E402
from ..evaluate import student_label  # noqa: E402
from ..imaging import png_bytes, resized, to_pil  # noqa: E402
from ..teaching_set import TeachingSet  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left} th{background:#f4f4f4} td.num{text-align:right}
td.own{background:#fff4d6} tr.ref td{background:#eef6ee;font-style:italic}
.set{margin:1.2rem 0;padding:.6rem 1rem;border:1px solid #ddd;border-radius:6px}
.row{display:flex;align-items:flex-start;gap:6px;margin:4px 0} .label{width:9rem;font-weight:600;padding-top:30px}
figure{margin:0;text-align:center;width:92px} figure img{width:88px;height:88px;object-fit:contain;cursor:zoom-in;border:1px solid #999}
#large{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);align-items:center;justify-content:center;cursor:zoom-out}
#large img{max-width:92vw;max-height:92vh;min-width:min(60vh,92vw);object-fit:contain}
figcaption{font-size:.68rem;line-height:1.2;color:#444} figcaption.off{color:#b00}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
.scroll{overflow-x:auto} .strip{margin:.4rem 0;font-size:.8rem} .strip img{height:72px;image-rendering:pixelated;
border:1px solid #999;margin-right:6px} details summary{cursor:pointer;color:#345;margin-top:.4rem}
"""


def _png_data_uri(pixels: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()


def _caption(score: dict | None, reference: dict | None) -> str:
    if not score:
        return ""
    low, high = reference["density_range"] if reference else (0, np.inf)
    off = not score["consistent"] or score["nearest_ratio"] > 1.5 or not low <= score["density_ratio"] <= high
    return (f'<figcaption class="{"off" if off else ""}">p(label) {score["label_probability"]:.2f}<br>'
            f'nearest {score["nearest_ratio"]:.2f} &middot; density {score["density_ratio"]:.2f}</figcaption>')


def parse_display(display) -> str | int | None:
    """--display: None (originals where exported, else the working size), 'working', 'original' or a size in px."""
    if display is None or display in ("working", "original"):
        return display
    text = str(display).strip().lower().removesuffix("px")
    if not text.isdigit() or not 1 <= int(text) <= 4096:
        raise OptionError("display", f"{{option}} '{display}' is not working, original or a size in px (at most 4096)")
    return int(text)


def _image_uris(ts: TeachingSet, title: str, display: str | int | None) -> list[str]:
    """The set's images as data URIs at the display resolution: the originals (where exported; with
    display 'original' they must be), the working-size images, or those enlarged to a size as a study
    at that --display shows them."""
    originals = ts.original_files() if display in (None, "original") else None
    if display == "original" and not originals:
        raise OptionError("display", f"{{option}} original: the set '{title}' has no originals (a generated set, or "
                                     "originals not exported); give working or a size in px, e.g. 256")
    if isinstance(display, int) and display < ts.images.shape[-1]:
        raise OptionError("display", f"{{option}} {display} is below the working size {ts.images.shape[-1]} px of "
                                     f"'{title}'; give working, original or a size of at least {ts.images.shape[-1]}")
    if originals:
        return ["data:image/png;base64," + base64.b64encode(f.read_bytes()).decode() for f in originals]
    if isinstance(display, int):
        return ["data:image/png;base64," + base64.b64encode(png_bytes(resized(to_pil(image), display))).decode()
                for image in ts.images]
    return [_png_data_uri(image) for image in ts.images]


def teaching_set_html(ts: TeachingSet, title: str, scores: list[dict] | None = None, reference: dict | None = None,
                      display: str | int | None = None) -> str:
    """The set, one row per class, at the display resolution (`_image_uris`; click an image to see it
    large), each image with its realism under it."""
    uris = _image_uris(ts, title, display)
    rows = []
    for c, members in enumerate(ts.per_class()):
        cells = "".join(
            f'<figure><img src="{uris[i]}" alt="" onclick="enlarge(this)" '
            f'title="{html.escape(str((ts.source_ids or [None] * len(ts))[i] or "generated"))}">'
            f'{_caption(scores[i] if scores else None, reference)}</figure>'
            for i in members)
        rows.append(f'<div class="row"><span class="label">{html.escape(ts.class_names[c])}</span>{cells}</div>')
    return f'<div class="set"><h3>{html.escape(title)}</h3>{"".join(rows)}{explanations_html(ts)}</div>'


def explanations_html(ts: TeachingSet) -> str:
    """The set's counterfactual strips (`teachset explain`), each with the proxy's probability per frame and its change map."""
    from ..explain import FOLDER, load_explanations

    found = load_explanations(ts.path) if ts.path else None
    if not found:
        return ""
    items = []
    for path in found["paths"]:
        data = {k: base64.b64encode((ts.path / FOLDER / path[k]).read_bytes()).decode() for k in ("strip", "change")}
        probabilities = " &rarr; ".join(f"{p:.2f}" for p in path["probabilities"])
        items.append(f'<div class="strip"><span>image {path["image"] + 1}: {html.escape(path["from"])} &rarr; '
                     f'{html.escape(path["to"])} (p {probabilities})</span><br><img src="data:image/png;base64,{data["strip"]}" '
                     f'alt="strip"><img class="change" src="data:image/png;base64,{data["change"]}" alt="where it changed"></div>')
    return ('<details><summary>how each image would look as the other class(es) (counterfactual strips; right: where it '
            f'changed)</summary>{"".join(items)}</details>')


def _columns(summary: list[dict]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["student"], r.get("extractor", "")) for r in summary))


def accuracy_table_html(summary: list[dict], majority: float | None) -> str:
    """Methods x students (teacher's extractor first, then the transfer students), mean and 95% interval."""
    columns = _columns(summary)
    main = columns[0][1]
    cell = {(r["method"], r["student"], r.get("extractor", "")): r for r in summary}
    head = "".join(f"<th>{html.escape(student_label(s, e, main))}</th>" for s, e in columns)
    body = []
    for m in dict.fromkeys(r["method"] for r in summary):
        cells = []
        for s, e in columns:
            r = cell.get((m, s, e))
            if r is None:
                cells.append("<td></td>")
                continue
            interval = "" if r["ci_low"] is None else f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            own = ' own" title="the teacher optimised the set against this student' if r.get("own") else ""
            cells.append(f'<td class="num{own}">{r["mean"]:.3f}{interval}{" *" if own else ""}</td>')
        body.append(f"<tr><td>{html.escape(m)}</td>{''.join(cells)}</tr>")
    floor = "" if majority is None else f"Always answering the majority class scores {majority:.3f}. "
    return (f'<div class="scroll"><table><tr><th>method</th>{head}</tr>{"".join(body)}</table></div>'
            f'<p class="muted">{floor}* (shaded): the teacher\'s own student, the one it optimised the set against; its score '
            "flatters the set. The columns named after another extractor are transfer students: that network was never used by any teacher.</p>")


def realism_table_html(realism: dict) -> str:
    reference = realism["reference"]
    keys = ("class_consistency", "label_probability", "nearest_ratio", "density_ratio", "in_real_range")
    head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in keys)

    def row(name, values, css=""):
        cells = "".join(f'<td class="num">{values[k]:.3f}</td>' if k in values else "<td></td>" for k in keys)
        return f'<tr class="{css}"><td>{html.escape(name)}</td>{cells}</tr>'

    rows = [row("real held-out images (reference)", reference, "ref")]
    rows += [row(m, values) for m, values in realism["methods"].items()]
    low, high = reference["density_range"]
    return (f'<div class="scroll"><table><tr><th>method</th>{head}</tr>{"".join(rows)}</table></div>'
            f'<p class="muted">In {html.escape(realism["extractor"])} features, which no teacher used. Class consistency: the share of '
            "images that a classifier trained on real held-out images labels as their class. Nearest-real ratio: distance to the "
            "nearest real train image over that of real held-out images (below 1: copies; far above: off the image manifold). "
            f"Density ratio: mean distance to the 10 nearest real images, likewise; real images lie in [{low:.2f}, {high:.2f}] "
            "(5th to 95th percentile), the share of a set's images in that range is its last column.</p>")


def accuracy_chart_svg(summary: list[dict], majority: float | None) -> str:
    methods = list(dict.fromkeys(r["method"] for r in summary))
    columns = _columns(summary)
    cell = {(r["method"], r["student"], r.get("extractor", "")): r for r in summary}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(methods) + 2) + 2.2, 3.6))
    width = 0.8 / len(columns)
    x = np.arange(len(methods))
    for j, key in enumerate(columns):
        found = [cell.get((m, *key)) for m in methods]
        means = [r["mean"] if r else np.nan for r in found]
        err = [[r["mean"] - r["ci_low"] if r and r["ci_low"] is not None else 0 for r in found],
               [r["ci_high"] - r["mean"] if r and r["ci_high"] is not None else 0 for r in found]]
        ax.bar(x + (j - (len(columns) - 1) / 2) * width, means, width, yerr=err, capsize=3,
               label=f"{student_label(*key, columns[0][1])} student")
    if majority is not None:
        ax.axhline(majority, color="k", linestyle="--", linewidth=1, label="always the majority class")
    ax.set_xticks(x, methods)
    ax.set_ylabel("accuracy on held-out images")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("accuracy per method and student, mean and 95% interval", fontsize=10)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def _split_text(results: dict) -> str:
    split = results.get("split")
    if not split:
        return "students scored on every image of the dataset that is not a teaching image (the paper's protocol)"
    if split["protocol"] == "paper":
        return "the paper's protocol: students scored on every image that is not a teaching image"
    return (f"held out: methods saw {split['train']} train images, students were scored on the {split['test']} "
            f"test images ({split['test_fraction']:g} of each class, split seed {split['split_seed']})")


def _display_text(display: str | int | None) -> str:
    if display is None:
        return "Real images at their original resolution where they were exported, others at the working size."
    if display == "original":
        return "Every image at its original resolution."
    if display == "working":
        return "Every image at the working size the methods saw."
    return (f"Every image at {display} px, enlarged smoothly from the working size (bicubic) as a study created with "
            f"--display {display} shows it; click one to see it at {display} px.")


def write_report(results_path: str | Path, out_path: str | Path | None = None, display: str | int | None = None) -> Path:
    """Read a results.json written by `teachset evaluate` or `teachset demo`, write report.html beside it;
    teaching images at the display resolution `display` (parse_display)."""
    display = parse_display(display)
    results_path = Path(results_path)
    if results_path.is_dir():
        results_path = results_path / "results.json"
    if not results_path.is_file():
        raise TeachsetError(f"no results at '{results_path}'; run `teachset evaluate` or `teachset demo` first")
    results = json.loads(results_path.read_text())
    root = results_path.parent
    summary, realism = results["summary"], results.get("realism")
    sets_html, shown = [], set()
    for row in sorted(results["rows"], key=lambda r: r.get("set_seed") or 0):  # each method's lowest seed, in first-seen order
        if row["method"] in shown or not row["teaching_set"]:
            continue
        shown.add(row["method"])
        path = Path(row["teaching_set"])
        ts = TeachingSet.load(path if path.is_absolute() else root / path)
        scores = (realism or {}).get("images", {}).get(row["teaching_set"])
        sets_html.append(teaching_set_html(ts, f"{row['method']} (seed {ts.seed})", scores, (realism or {}).get("reference"),
                                           display))
    dataset = results.get("dataset", {})
    large_style = f"#large img{{width:min({display}px,92vw);min-width:0}}" if isinstance(display, int) else ""
    realism_html = f"<h2>How real the teaching images look</h2>{realism_table_html(realism)}" if realism else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>teachset report</title><style>{STYLE}{large_style}</style></head><body>
<h1>teachset report</h1>
<p class="muted">{html.escape(dataset.get('description', ''))}<br>dataset fingerprint {html.escape(str(dataset.get('fingerprint', '')))}
 &middot; features {html.escape(str(results.get('extractor', '')))} &middot; teachset {html.escape(str(results.get('code_version', '')))}
<br>{html.escape(_split_text(results))}</p>
<h2>What fresh students learn, on held-out images</h2>
{accuracy_table_html(summary, results.get('majority_rate'))}
{accuracy_chart_svg(summary, results.get('majority_rate'))}
<p class="muted">Each value: a teaching set made with one seed, a fresh student trained on it with one seed, scored on images
no method saw. n per cell: {', '.join(sorted({str(r['n']) for r in summary}))}.</p>
{realism_html}
<h2>Teaching sets</h2>
<p class="muted">Under each image: the probability a classifier of real images gives its label, and its nearest-real and density
ratios (red: another class, off the manifold, or outside the real range). {_display_text(display)}</p>
{''.join(sets_html)}
<h2>Options</h2>
<pre>{html.escape(json.dumps(results.get('options', {}), indent=2))}</pre>
<div id="large" onclick="this.style.display='none'"><img alt="the image, large"></div>
<script>function enlarge(img) {{ const box = document.getElementById("large"); box.firstElementChild.src = img.src;
box.style.display = "flex"; }}</script>
</body></html>
"""
    out_path = Path(out_path) if out_path else root / "report.html"
    atomic_write_text(out_path, page)
    return out_path

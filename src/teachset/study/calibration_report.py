"""What `teachset study calibrate` records and shows: proxy.json's scores and ranking (summary_of),
and report.html with candidates.csv, images.csv and fig_images.png (write_report): the candidates
ranked by held-out log-likelihood per answer, the baselines, and per test image the participants'
accuracy against the probability of the right answer that the chosen proxy (and the default NN)
predicted for it out of fold.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from .. import defaults
from ..atomic import atomic_write_text
from .db import Database
from .design import StudyDesign
from .export import csv_text
from .proxyfit import Scored, paired_t

CANDIDATE_COLUMNS = ["rank", "label", "kind", "extractor", "head", "similarity", "rule", "temperature", "lapse",
                     "parameters", "log_likelihood", "accuracy", "t_vs_chance", "chosen"]
IMAGE_COLUMNS = ["condition", "item", "source_id", "label", "label_name", "answers", "human_accuracy", "predicted",
                 "default_nn", "default_lc"]


def _row(scored: Scored, chance: Scored, rank: int | None, chosen: Scored) -> dict:
    c = scored.candidate
    spec = c.spec(scored.params)
    if spec is None or spec.head == "chance":
        fitted = {"head": "condition mean" if spec is None else "chance"}
    else:
        fitted = {"head": spec.head, "similarity": spec.similarity if spec.head == "nn" else "",
                  "rule": spec.rule if spec.head == "nn" else "", "temperature": spec.temperature, "lapse": spec.lapse}
    return {"rank": rank, "label": c.label, "kind": c.kind, "extractor": c.extractor, "head": "", "similarity": "",
            "rule": "", "temperature": None, "lapse": None, **fitted, "parameters": c.parameters,
            "log_likelihood": scored.log_likelihood, "accuracy": scored.accuracy,
            "t_vs_chance": None if scored is chance else _finite(paired_t(scored, chance)), "chosen": scored is chosen}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _gain(a: Scored, b: Scored) -> dict:
    d = a.log_likelihood - b.log_likelihood
    return {"log_likelihood": d, "likelihood_ratio_per_answer": math.exp(d), "accuracy": a.accuracy - b.accuracy,
            "t": _finite(paired_t(a, b))}


def summary_of(design: StudyDesign, db: Database, found, options, when: str) -> dict:
    """What proxy.json records beside the proxy: the data, the chosen candidate's held-out scores, the
    baselines and the gains over them, every candidate ranked, the options."""
    study, answers = found.study, found.study.answers
    chosen = found.chosen
    default = max(found.baselines[1:], key=lambda s: s.log_likelihood)
    return {
        "study": design.name, "study_uid": design.uid, "calibrated_at": when, "database": db.describe(),
        "dataset": design.dataset, "answers": len(answers.pair), "participants": answers.participants,
        "simulated_participants": study.simulated, "simulated_left_out": study.left_out_simulated,
        "images": len(answers.pair_label), "classes": answers.num_classes, "folds": found.folds,
        "extractors": found.extractors, "default_extractor": defaults.EXTRACTOR, "chosen": chosen.candidate.label, "reason": found.reason,
        "scores": {"log_likelihood": chosen.log_likelihood, "accuracy": chosen.accuracy,
                   "chance_log_likelihood": -math.log(answers.num_classes)},
        "proxy_name": chosen.candidate.spec(chosen.params).name if chosen.candidate.spec(chosen.params) else "",
        "baselines": {s.candidate.label: {"log_likelihood": s.log_likelihood, "accuracy": s.accuracy,
                                          **({"lapse": s.params["lapse"]} if "lapse" in s.params else {}),
                                          "gain": _gain(chosen, s)}
                      for s in [*found.baselines, found.chance]},
        "gain_over_default": {"baseline": default.candidate.label, **_gain(chosen, default)},
        "gain_over_condition_mean": _gain(chosen, found.baselines[0]),
        "candidates": [_row(s, found.chance, i + 1, chosen) for i, s in enumerate(found.ranked)],
        "options": dataclasses.asdict(options),
    }


def _per_pair(values: np.ndarray, pair: np.ndarray, pairs: int) -> np.ndarray:
    return np.bincount(pair, weights=values, minlength=pairs) / np.maximum(np.bincount(pair, minlength=pairs), 1)


def image_rows(design: StudyDesign, found) -> list[dict]:
    """One row per (condition, test image) answered: the participants' accuracy, the predictions."""
    a, pairs = found.study.answers, found.study.pairs
    n = len(pairs)
    human = _per_pair((a.answer == a.pair_label[a.pair]).astype(float), a.pair, n)
    predicted = _per_pair(found.chosen.p_right, a.pair, n)
    default_lc, default_nn = (_per_pair(s.p_right, a.pair, n) for s in found.baselines[1:3])
    count = np.bincount(a.pair, minlength=n)
    source = {s.item: s.source_id or "" for s in design.test_pool}
    names = design.class_names
    return [{"condition": design.condition_names[c], "item": item, "source_id": source.get(item, ""),
             "label": int(a.pair_label[i]), "label_name": names[a.pair_label[i]], "answers": int(count[i]),
             "human_accuracy": float(human[i]), "predicted": float(predicted[i]), "default_nn": float(default_nn[i]),
             "default_lc": float(default_lc[i])} for i, (c, item) in enumerate(pairs)]


def _figure(rows: list[dict], out: Path, chosen: str, chance: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    human = np.array([r["human_accuracy"] for r in rows])
    size = 12 + 4 * np.sqrt([r["answers"] for r in rows])
    ax.scatter([r["default_nn"] for r in rows], human, s=size, color="#bbbbbb", label="default NN", alpha=0.7)
    for condition in dict.fromkeys(r["condition"] for r in rows):
        mine = [r for r in rows if r["condition"] == condition]
        ax.scatter([r["predicted"] for r in mine], [r["human_accuracy"] for r in mine],
                   s=[12 + 4 * math.sqrt(r["answers"]) for r in mine], alpha=0.8, label=f"chosen proxy, {condition}")
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8)
    ax.axhline(chance, linestyle="--", color="gray", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability of the right answer (held out)")
    ax.set_ylabel("participants' accuracy on the image")
    ax.set_title(chosen[:70], fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "fig_images.png", dpi=120)
    plt.close(fig)
    return "fig_images.png"


def write_report(design: StudyDesign, found, about: dict, out: Path) -> None:
    """report.html, candidates.csv, images.csv and fig_images.png in `out`."""
    from .web import page_environment

    rows = image_rows(design, found)
    atomic_write_text(out / "candidates.csv", csv_text(about["candidates"], CANDIDATE_COLUMNS))
    atomic_write_text(out / "images.csv", csv_text(rows, IMAGE_COLUMNS))
    figure = _figure(rows, out, about["chosen"], 1 / len(design.class_names))
    human = np.array([r["human_accuracy"] for r in rows])
    weights = np.array([r["answers"] for r in rows], dtype=float)
    fit = {key: float(np.sqrt(np.average((np.array([r[key] for r in rows]) - human) ** 2, weights=weights)))
           for key in ("predicted", "default_nn", "default_lc")}
    html = page_environment().get_template("calibration.html").render(
        about=about, candidates=about["candidates"], images=sorted(rows, key=lambda r: -abs(r["predicted"] - r["human_accuracy"])),
        figure=figure, fit=fit, fmt=_fmt)
    atomic_write_text(out / "report.html", html)


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)

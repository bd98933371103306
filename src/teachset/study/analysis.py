"""`teachset study analyze`: what the participants learned, condition by condition, beside the
proxy students (the paper's Fig. 3E: LC, NN and humans side by side).

Per condition: test accuracy pooled over trials with a 95% Wilson interval; the mean of
participant accuracies with a t interval; quiz accuracy; how often the teaching set was
reopened; a learning curve over test trials (blocks, Wilson intervals); and the accuracy of
fresh LC and NN students trained on the condition's teaching set and scored on the same test
images (`teachset.evaluate.proxy_accuracy`). Between conditions: a permutation test on
participant accuracies (stats.py says why), and pairwise tests with Holm's adjustment.

By default only participants who completed the study count, less those the study's exclusion
rules leave out (checks.py: failed attention checks, implausibly fast answers), each listed with
the reasons in the report and in exclusions.csv; every table still lists everyone. Attention-check
trials never count towards an accuracy. Writes, into the output folder: report.html, trials.csv,
participants.csv, events.csv, data_dictionary.csv, conditions.csv, learning_curve.csv,
exclusions.csv, aids.csv (aid use, where conditions carry teaching aids: aids.py), analysis.json,
and two figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from .. import defaults
from ..atomic import atomic_write_text, write_json
from ..errors import OptionError, TeachsetError
from .aids import aid_use
from .checks import exclusion_reasons, exclusion_rules
from .db import Database, utcnow
from .design import StudyDesign
from .export import StudyData, csv_text, data_dictionary, load_data, write_tables
from .stats import holm, mean_interval, permutation_test, wilson_interval


@dataclass
class ConditionResult:
    condition: str
    method: str
    teaching_images: int
    participants: int
    test_trials: int
    test_correct: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    participant_mean: float
    participant_low: float
    participant_high: float
    quiz_accuracy: float
    quiz_low: float
    quiz_high: float
    revisits_per_participant: float
    revisited_fraction: float
    median_rt_ms: float
    proxy_lc: float
    proxy_nn: float


def _scored(trial: dict) -> bool:
    """A test trial whose answer counts towards an accuracy (not an attention check)."""
    return trial["phase"] == "test" and not trial["check"]


def exclusions(design: StudyDesign, data: StudyData, apply: bool = True, include_incomplete: bool = False,
               include_simulated: bool = True) -> dict:
    """The study's exclusion rules and every participant they leave out (of those who would count:
    the completed, or with `include_incomplete` everyone with test answers; and the screened out;
    simulated participants only with `include_simulated`), with the reasons."""
    excluded = []
    for p in data.participants:
        reasons = exclusion_reasons(p, design.settings)
        candidate = p["status"] in ("completed", "screened_out") or (include_incomplete and p["test_trials"])
        candidate = candidate and (include_simulated or not p["simulated"])
        if reasons and candidate:
            excluded.append({"participant": p["participant"], "condition": p["condition"], "status": p["status"],
                             "reasons": "; ".join(reasons)})
    return {"applied": apply, "rules": exclusion_rules(design.settings), "excluded": excluded,
            "per_condition": {c: sum(e["condition"] == c for e in excluded) for c in design.condition_names}}


def _test_index(design: StudyDesign, data: StudyData, included: set[str]) -> list[int]:
    """The dataset images the humans were scored on: the shared set, or those actually shown."""
    if design.test_mode == "shared":
        return sorted(s.item for s in design.test_pool)
    shown = {t["item"] for t in data.trials if _scored(t) and t["participant"] in included}
    return sorted(shown) or sorted(s.item for s in design.test_pool)


def proxy_accuracies(design: StudyDesign, test_index: list[int], extractor: str, repeats: int,
                     seed: int) -> dict[str, dict[str, float]]:
    """{condition: {"lc": .., "nn": ..}}: fresh proxy students on each teaching set, scored on test_index."""
    try:
        from ..evaluate import proxy_accuracy
    except ImportError as error:
        raise TeachsetError(f"the proxy students are not available ({error}); analyse without them (humans only)") from None
    from ..data import load_dataset
    from ..teaching_set import TeachingSet

    spec = design.dataset["spec"]
    dataset = load_dataset(spec["source"], image_size=spec["image_size"], channels=spec.get("channels"),
                           skip_bad=spec.get("skip_bad", False))
    if dataset.fingerprint != design.dataset["fingerprint"]:
        raise TeachsetError(
            f"dataset '{spec['source']}' has changed since the study was created (fingerprint {dataset.fingerprint}, "
            f"study {design.dataset['fingerprint']}); restore it, or analyse without the proxy students"
        )
    results = {}
    for condition in design.conditions:
        teaching_set = TeachingSet.load(design.path / condition.folder)
        found = proxy_accuracy(teaching_set, dataset, np.asarray(test_index, dtype=np.int64), extractor=extractor,
                               repeats=repeats, seed=seed)
        results[condition.name] = {"lc": float(found["lc"]), "nn": float(found["nn"])}
    return results


def summarize(design: StudyDesign, data: StudyData, included: set[str],
              proxies: dict[str, dict[str, float]]) -> list[ConditionResult]:
    results = []
    for condition in design.conditions:
        people = [p for p in data.participants if p["condition"] == condition.name and p["participant"] in included]
        names = {p["participant"] for p in people}
        test = [t for t in data.trials if t["participant"] in names and _scored(t)]
        quiz = [t for t in data.trials if t["participant"] in names and t["phase"] == "quiz"]
        correct, quiz_correct = sum(t["correct"] for t in test), sum(t["correct"] for t in quiz)
        mean, low, high = mean_interval([p["test_accuracy"] for p in people if p["test_trials"]])
        low, high = (float(np.clip(v, 0.0, 1.0)) for v in (low, high))  # an accuracy's t interval, in [0, 1]
        revisits = [p["revisits_test"] + p["revisits_quiz"] for p in people]
        proxy = proxies.get(condition.name, {})
        results.append(ConditionResult(
            condition=condition.name, method=condition.method, teaching_images=len(condition.teach),
            participants=len(people), test_trials=len(test), test_correct=correct,
            accuracy=correct / len(test) if test else math.nan, **dict(zip(("accuracy_low", "accuracy_high"),
                                                                           wilson_interval(correct, len(test)))),
            participant_mean=mean, participant_low=low, participant_high=high,
            quiz_accuracy=quiz_correct / len(quiz) if quiz else math.nan,
            **dict(zip(("quiz_low", "quiz_high"), wilson_interval(quiz_correct, len(quiz)))),
            revisits_per_participant=float(np.mean(revisits)) if revisits else math.nan,
            revisited_fraction=float(np.mean([r > 0 for r in revisits])) if revisits else math.nan,
            median_rt_ms=float(np.median([t["rt_ms"] for t in test])) if test else math.nan,
            proxy_lc=proxy.get("lc", math.nan), proxy_nn=proxy.get("nn", math.nan),
        ))
    return results


def learning_curve(design: StudyDesign, data: StudyData, included: set[str], blocks: int) -> list[dict]:
    """Accuracy per block of consecutive test trials, per condition, pooled over participants."""
    size = max(1, math.ceil(design.test_trials / blocks))
    condition_of = {p["participant"]: p["condition"] for p in data.participants}
    tally: dict[tuple[str, int], list[int]] = {}
    for t in data.trials:
        if _scored(t) and t["participant"] in included:
            tally.setdefault((condition_of[t["participant"]], t["trial"] // size), []).append(t["correct"])
    rows = []
    for (condition, block), outcomes in sorted(tally.items()):
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        rows.append({"condition": condition, "block": block, "first_trial": block * size,
                     "last_trial": min(design.test_trials, (block + 1) * size) - 1, "trials": len(outcomes),
                     "accuracy": sum(outcomes) / len(outcomes), "low": low, "high": high})
    return rows


def compare(design: StudyDesign, data: StudyData, included: set[str], permutations: int, seed: int) -> dict:
    accuracy = {name: [p["test_accuracy"] for p in data.participants
                       if p["condition"] == name and p["participant"] in included and p["test_trials"]]
                for name in design.condition_names}
    overall = permutation_test(list(accuracy.values()), permutations, seed)
    pairs = []
    for a, b in combinations(design.condition_names, 2):
        found = permutation_test([accuracy[a], accuracy[b]], permutations, seed)
        difference = float(np.mean(accuracy[a]) - np.mean(accuracy[b])) if accuracy[a] and accuracy[b] else math.nan
        pairs.append({"a": a, "b": b, "difference": difference, "p_value": found["p_value"]})
    valid = [i for i, pair in enumerate(pairs) if not math.isnan(pair["p_value"])]
    for i, adjusted in zip(valid, holm([pairs[i]["p_value"] for i in valid])):
        pairs[i]["p_holm"] = adjusted
    return {"overall": overall, "pairs": pairs}


def _figures(results: list[ConditionResult], curve: list[dict], out: Path, chance: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.condition for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names) + 3.5), 3.6))
    width = 0.26
    ax.bar(x - width, [r.proxy_lc for r in results], width, label="LC student", color="#8da0cb")
    ax.bar(x, [r.proxy_nn for r in results], width, label="NN student", color="#66c2a5")
    human = np.array([r.accuracy for r in results])
    errors = np.array([[r.accuracy - r.accuracy_low for r in results], [r.accuracy_high - r.accuracy for r in results]])
    ax.bar(x + width, human, width, yerr=np.nan_to_num(errors), capsize=3, label="humans (95% Wilson)", color="#fc8d62")
    ax.axhline(chance, linestyle="--", color="gray", linewidth=1, label="chance")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("Proxy students and humans, per teaching set")
    fig.tight_layout()
    fig.savefig(out / "fig_accuracy.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name in names:
        rows = [r for r in curve if r["condition"] == name]
        if not rows:
            continue
        centre = [(r["first_trial"] + r["last_trial"]) / 2 + 1 for r in rows]
        ax.plot(centre, [r["accuracy"] for r in rows], marker="o", label=name)
        ax.fill_between(centre, [r["low"] for r in rows], [r["high"] for r in rows], alpha=0.15)
    ax.axhline(chance, linestyle="--", color="gray", linewidth=1, label="chance")
    ax.set_xlabel("test trial")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title("Learning curve over the test")
    fig.tight_layout()
    fig.savefig(out / "fig_learning_curve.png", dpi=120)
    plt.close(fig)
    return ["fig_accuracy.png", "fig_learning_curve.png"]


def _clean(value):
    """JSON-safe: nan -> None, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def analysis_folder(design: StudyDesign, out: str | Path | None = None) -> Path:
    """Where the analysis goes: `out`, or the study folder's analysis/."""
    return Path(out) if out is not None else design.path / "analysis"


def analyze(design: StudyDesign, db: Database, out: str | Path | None = None, include_incomplete: bool = False,
            proxy: bool = True, extractor: str = defaults.EXTRACTOR, repeats: int = defaults.REPEATS, seed: int = 0,
            permutations: int = 10_000, blocks: int = 10, exclude: bool = True, include_simulated: bool = False) -> dict:
    """Write the analysis of `design`'s responses in `db` to `out` (default: analysis_folder);
    returns what analysis.json holds. `exclude`: apply the study's exclusion rules (they are listed
    either way); `include_simulated`: count simulated participants (`teachset study simulate`) too."""
    from .web import page_environment

    if permutations < 100:
        raise OptionError("permutations", f"{{option}} {permutations} is too few for a p-value; use at least 100 "
                          "(default 10000)")
    if not 1 <= blocks <= 1000:
        raise OptionError("blocks", f"{{option}} must be between 1 and 1000, got {blocks}")
    db.require_schema()
    data = load_data(db, design)
    left_out = exclusions(design, data, exclude, include_incomplete, include_simulated)
    excluded = {e["participant"] for e in left_out["excluded"]} if exclude else set()
    included = {p["participant"] for p in data.participants if p["participant"] not in excluded
                and (p["status"] == "completed" or (include_incomplete and p["test_trials"] > 0))
                and (include_simulated or not p["simulated"])}
    simulated = sum(bool(p["simulated"]) for p in data.participants)
    test_index = _test_index(design, data, included)
    proxies = proxy_accuracies(design, test_index, extractor, repeats, seed) if proxy else {}
    results = summarize(design, data, included, proxies)
    curve = learning_curve(design, data, included, blocks)
    comparison = compare(design, data, included, permutations, seed)

    out = analysis_folder(design, out)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(data, out)
    condition_rows = [asdict(r) for r in results]
    atomic_write_text(out / "conditions.csv", csv_text(condition_rows, list(condition_rows[0])))
    atomic_write_text(out / "learning_curve.csv", csv_text(curve, ["condition", "block", "first_trial", "last_trial",
                                                                   "trials", "accuracy", "low", "high"]))
    atomic_write_text(out / "exclusions.csv", csv_text(left_out["excluded"], ["participant", "condition", "status",
                                                                              "reasons"]))
    aids = aid_use(design, data, included)
    if aids:
        atomic_write_text(out / "aids.csv", csv_text(aids, list(aids[0])))
    figures = _figures(results, curve, out, chance=1 / len(design.class_names)) if included else []
    summary = {
        "study": design.name, "study_uid": design.uid, "analysed_at": utcnow().isoformat(timespec="seconds") + "Z",
        "database": db.describe(), "included": ("completed participants" if not include_incomplete
                                                   else "all participants with test answers")
        + (", less the excluded" if exclude else "; exclusion rules not applied")
        + (f"; {simulated} simulated participants {'counted' if include_simulated else 'left out'}" if simulated else ""),
        "participants_included": len(included), "simulated": {"participants": simulated, "counted": include_simulated},
        "participants_total": len(data.participants), "test_images": len(test_index), "test_mode": design.test_mode,
        "proxy": {"extractor": extractor, "repeats": repeats, "seed": seed} if proxy else None,
        "conditions": condition_rows, "comparison": comparison, "learning_curve": curve, "exclusions": left_out,
        "attention_checks": {"per_participant": design.settings.attention_checks, "kind": design.settings.check_kind},
        "aids": aids,
    }
    write_json(out / "analysis.json", _clean(summary))
    html = page_environment().get_template("analysis.html").render(
        summary=summary, results=results, comparison=comparison, curve=curve, figures=figures,
        participants=data.participants, left_out=left_out, aids=aids,
        dictionary=data_dictionary(), fmt=_fmt, proxy=proxy)
    atomic_write_text(out / "report.html", html)
    return _clean(summary)


def _fmt(value, digits: int = 3) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)

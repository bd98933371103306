"""The fresh-student protocol: how well does a teaching set teach LC and NN proxy students?

For a teaching set: its images go through the frozen extractor; a fresh student (seeded) is
trained on them; it is scored on every image of the dataset except the teaching images
themselves (matched by id). Repeats use student seeds seed, seed+1, ... Summaries give mean,
standard deviation and a 95% Student-t interval over all rows of a (method, student) cell.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from . import __version__, defaults
from .atomic import atomic_write_text, write_json
from .data import ImageDataset
from .errors import TeachsetError
from .features import extract
from .students import make_student
from .teaching_data import TeachingData
from .teaching_set import TeachingSet


def check_same_dataset(teaching_set: TeachingSet, dataset: ImageDataset) -> None:
    made_from = teaching_set.dataset.get("fingerprint")
    if made_from != dataset.fingerprint:
        raise TeachsetError(
            f"teaching set '{teaching_set.path or teaching_set.method}' was made from dataset {made_from} "
            f"({teaching_set.dataset.get('name')}), but the dataset given is {dataset.fingerprint} ({dataset.name}); "
            "evaluate on the dataset it was made from (same source, image size and options)"
        )


def held_out_index(teaching_set: TeachingSet, dataset: ImageDataset) -> np.ndarray:
    """Indices of the dataset's images that are not in the teaching set."""
    taught = set(teaching_set.source_ids or [])
    return np.array([i for i, image_id in enumerate(dataset.ids) if image_id not in taught], dtype=np.int64)


@dataclass
class Evaluator:
    """Scores teaching sets with fresh proxy students on one dataset's features (`data`).
    `students` maps a student kind to its parameters (default: the evaluation's LC and NN)."""

    data: TeachingData
    students: dict[str, dict] = field(default_factory=lambda: {s: {} for s in defaults.STUDENTS})

    def teaching_features(self, teaching_set: TeachingSet) -> np.ndarray:
        return extract(self.data.network, teaching_set.tensor())

    def accuracies(self, teaching_set: TeachingSet, student: str, seeds, test_index: np.ndarray | None = None) -> list[float]:
        """Accuracy of a fresh `student` per seed, on test_index (default: the dataset minus the teaching images)."""
        dataset = self.data.dataset
        check_same_dataset(teaching_set, dataset)
        test_index = held_out_index(teaching_set, dataset) if test_index is None else test_index
        taught = self.teaching_features(teaching_set)
        X, y = self.data.features[test_index], dataset.labels[test_index]
        params = self.students.get(student, {})
        return [make_student(student, seed, **params).fit(taught, teaching_set.labels, dataset.num_classes).score(X, y)
                for seed in seeds]

    def evaluate(self, teaching_set: TeachingSet, repeats: int = defaults.REPEATS, seed: int = 0) -> list[dict]:
        """One row per (student, repeat): method, set seed, student seed, accuracy, test size."""
        n_test = len(held_out_index(teaching_set, self.data.dataset))
        rows = []
        for student in self.students:
            seeds = [seed + r for r in range(repeats)]
            for r, (s, acc) in enumerate(zip(seeds, self.accuracies(teaching_set, student, seeds))):
                rows.append({"method": teaching_set.method, "teaching_set": str(teaching_set.path or ""),
                             "set_seed": teaching_set.seed, "student": student, "repeat": r, "student_seed": s,
                             "accuracy": acc, "n_test": n_test})
        return rows


def evaluate_sets(teaching_sets: list[TeachingSet], dataset: str | None = None, extractor: str = defaults.EXTRACTOR,
                  input_size: int | None = None, repeats: int = defaults.REPEATS, seed: int = 0,
                  skip_bad: bool = False) -> tuple[list[dict], ImageDataset]:
    """Rows of fresh-student accuracies for teaching sets, each scored on the dataset it records (or
    on `dataset`, a source loaded with each set's own options); also the first set's dataset."""
    from .data import load_dataset

    evaluators: dict[str, Evaluator] = {}
    rows = []
    for ts in teaching_sets:
        spec = dict(ts.dataset["spec"])
        if dataset:
            spec.update(source=dataset, skip_bad=skip_bad)
        key = json.dumps(spec, sort_keys=True)
        if key not in evaluators:
            evaluators[key] = Evaluator(TeachingData.load(load_dataset(**spec), extractor, input_size))
        rows += evaluators[key].evaluate(ts, repeats=repeats, seed=seed)
    return rows, next(iter(evaluators.values())).data.dataset


def majority_rate(dataset: ImageDataset) -> float:
    """The accuracy of always answering the most common class: the floor every table is read against."""
    return float(np.bincount(dataset.labels).max() / len(dataset))


def results_context(dataset: ImageDataset, extractor: str, options: dict, **extra) -> dict:
    """What results.json records beside its rows: the code, the options, the dataset and its majority rate."""
    return {"code_version": __version__, "options": options, "extractor": extractor,
            "dataset": {**dataset.record(), "description": dataset.describe(), "info": dataset.info},
            "majority_rate": majority_rate(dataset), **extra}


def proxy_accuracy(teaching_set: TeachingSet, dataset: ImageDataset, test_index, extractor: str = defaults.EXTRACTOR,
                   repeats: int = defaults.REPEATS, seed: int = 0) -> dict[str, float]:
    """Mean accuracy of fresh LC and NN students trained on `teaching_set`, scored on dataset[test_index]."""
    evaluator = Evaluator(TeachingData.load(dataset, extractor))
    index = np.asarray(test_index, dtype=np.int64)
    seeds = range(seed, seed + repeats)
    return {s: float(np.mean(evaluator.accuracies(teaching_set, s, seeds, index))) for s in evaluator.students}


def interval(values) -> dict:
    """mean, sd and the 95% Student-t interval of the mean (None where it cannot be computed)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return {"n": len(v), "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(v) - 1) * sd / np.sqrt(len(v)))
    return {"n": len(v), "mean": mean, "std": sd, "ci_low": mean - half, "ci_high": mean + half}


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (method, student), in first-seen order."""
    cells: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        cells.setdefault((row["method"], row["student"]), []).append(row["accuracy"])
    return [{"method": m, "student": s, **interval(v)} for (m, s), v in cells.items()]


def format_table(summary: list[dict]) -> str:
    """A plain-text table: method x student, mean and 95% interval."""
    students = list(dict.fromkeys(r["student"] for r in summary))
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cell = {(r["method"], r["student"]): r for r in summary}
    lines = [f"{'method':<12}" + "".join(f"{s.upper() + ' accuracy (95% CI)':>30}" for s in students)]
    for m in methods:
        parts = []
        for s in students:
            r = cell.get((m, s))
            if r is None:
                parts.append(f"{'-':>30}")
            elif r["ci_low"] is None:
                parts.append(f"{r['mean']:>30.3f}")
            else:
                parts.append(f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]".rjust(30))
        lines.append(f"{m:<12}" + "".join(parts))
    return "\n".join(lines)


def write_results(out_dir, rows: list[dict], summary: list[dict], context: dict) -> None:
    """results.json (context, rows, summary), results.csv (rows) and summary.csv, each written atomically."""
    write_json(out_dir / "results.json", {**context, "rows": rows, "summary": summary})
    for name, table in (("results.csv", rows), ("summary.csv", summary)):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
        atomic_write_text(out_dir / name, buffer.getvalue())

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
from .data.splits import Split, split_dataset
from .teaching_data import TeachingData
from .teaching_set import TeachingSet


def check_same_dataset(teaching_set: TeachingSet, dataset: ImageDataset) -> None:
    """A teaching set is scored on the dataset it was made from, and (for a held-out part) on the
    same split, so that none of the images it could have seen is a test image."""
    made_from, given = teaching_set.dataset.get("fingerprint"), dataset.record()
    if made_from != given["fingerprint"]:
        raise TeachsetError(
            f"teaching set '{teaching_set.path or teaching_set.method}' was made from dataset {made_from} "
            f"({teaching_set.dataset.get('name')}), but the dataset given is {given['fingerprint']} ({dataset.name}); "
            "evaluate on the dataset it was made from (same source, image size and options)"
        )
    split = teaching_set.dataset.get("split")
    if split and given.get("split") and {k: split[k] for k in ("protocol", "test_fraction", "split_seed")} != \
            {k: given["split"][k] for k in ("protocol", "test_fraction", "split_seed")}:
        raise TeachsetError(f"teaching set '{teaching_set.path or teaching_set.method}' was made from another train split "
                            f"({split}) than the one it is scored on ({given['split']}); score it on its own split")


def held_out_index(teaching_set: TeachingSet, dataset: ImageDataset) -> np.ndarray:
    """Indices of the dataset's images that are not in the teaching set."""
    taught = set(teaching_set.source_ids or [])
    return np.array([i for i, image_id in enumerate(dataset.ids) if image_id not in taught], dtype=np.int64)


def taught_students(teaching_set: TeachingSet) -> set[tuple[str, str]]:
    """The (student, extractor) pairs a teacher optimised the set against: the teacher's own students,
    whose scores flatter it. Empty for selected sets."""
    params = teaching_set.params
    student = params.get("student")
    if not isinstance(student, str) or teaching_set.method.endswith("-snapped"):
        return set()
    if isinstance(params.get("proxy"), dict):  # taught against a calibrated proxy: its student, in its space
        return {(student, params["proxy"]["extractor"]), ("proxy", params["proxy"]["extractor"])}
    return {(s, e) for s in student.split("+") for e in (params.get("extractor"), *params.get("extractors", []))}


PROXY = "proxy:"  # a student named proxy:<proxy.json>: that calibrated proxy's predicted human accuracy


@dataclass
class Evaluator:
    """Scores teaching sets with fresh proxy students on the images in `data` (the test part, in the
    teachers' extractor), and on the same images in the `transfer` extractors that no teacher used.
    `students` maps a student kind to its parameters (default: the evaluation's LC and NN); a student
    named proxy:<proxy.json> is a calibrated proxy (teachset.proxy), scored by the accuracy it predicts
    people reach after the set, in its own feature space."""

    data: TeachingData
    transfer: list[TeachingData] = field(default_factory=list)
    students: dict[str, dict] = field(default_factory=lambda: {s: {} for s in defaults.STUDENTS})
    _proxies: dict = field(default_factory=dict, repr=False, compare=False)

    def proxy(self, student: str):
        """(the calibrated proxy a proxy:<file> student names, the test images in its feature space), loaded once."""
        if student not in self._proxies:
            from .proxy import load_proxy

            spec = load_proxy(student[len(PROXY):])
            space = next((s for s in (self.data, *self.transfer) if (s.extractor, s.input_size) ==
                          (spec.extractor, spec.input_size)), None) or spec.space(self.data)
            self._proxies[student] = (spec, space)
        return self._proxies[student]

    def predicted_accuracy(self, teaching_set: TeachingSet, student: str) -> float:
        """The accuracy a calibrated proxy predicts for people taught with the set, on the held-out images."""
        spec, space = self.proxy(student)
        check_same_dataset(teaching_set, space.dataset)
        index = held_out_index(teaching_set, space.dataset)
        taught = extract(space.network, teaching_set.tensor())
        return spec.predicted_accuracy(taught, teaching_set.labels, space.features[index], space.dataset.labels[index],
                                       space.dataset.num_classes)

    def accuracies(self, teaching_set: TeachingSet, student: str, seeds, test_index: np.ndarray | None = None,
                   space: TeachingData | None = None) -> list[float]:
        """Accuracy of a fresh `student` per seed in one feature space (default `data`), on test_index
        (default: every image there except the teaching images)."""
        space = space or self.data
        dataset = space.dataset
        check_same_dataset(teaching_set, dataset)
        test_index = held_out_index(teaching_set, dataset) if test_index is None else test_index
        taught = extract(space.network, teaching_set.tensor())
        X, y = space.features[test_index], dataset.labels[test_index]
        params = self.students.get(student, {})
        return [make_student(student, seed, **params).fit(taught, teaching_set.labels, dataset.num_classes).score(X, y)
                for seed in seeds]

    def evaluate(self, teaching_set: TeachingSet, repeats: int = defaults.REPEATS, seed: int = 0) -> list[dict]:
        """One row per (extractor, student, repeat): method, set seed, student, extractor, whether it is
        the teacher's own student, student seed, accuracy, test size."""
        n_test = len(held_out_index(teaching_set, self.data.dataset))
        own = taught_students(teaching_set)
        rows = []
        for student in [s for s in self.students if s.startswith(PROXY)]:
            spec, _ = self.proxy(student)
            taught_against = (teaching_set.params.get("proxy") or {}).get("sha256") == spec.sha256
            rows.append({"method": teaching_set.method, "teaching_set": str(teaching_set.path or ""),
                         "set_seed": teaching_set.seed, "student": "proxy", "extractor": spec.extractor,
                         "own": taught_against, "repeat": 0, "student_seed": seed,
                         "accuracy": self.predicted_accuracy(teaching_set, student), "n_test": n_test})
        for space in (self.data, *self.transfer):
            for student in [s for s in self.students if not s.startswith(PROXY)]:
                seeds = [seed + r for r in range(repeats)]
                for r, (s, acc) in enumerate(zip(seeds, self.accuracies(teaching_set, student, seeds, space=space))):
                    rows.append({"method": teaching_set.method, "teaching_set": str(teaching_set.path or ""),
                                 "set_seed": teaching_set.seed, "student": student, "extractor": space.extractor,
                                 "own": (student, space.extractor) in own, "repeat": r, "student_seed": s,
                                 "accuracy": acc, "n_test": n_test})
        return rows


def other_spaces(dataset: ImageDataset, names: tuple[str, ...]) -> dict[str, int]:
    """The input size each extractor besides the teachers' (transfer students, realism) sees the dataset's images at."""
    return {name: defaults.network_input_size(name, dataset.image_size) for name in names}


def evaluation_parts(dataset: ImageDataset, split: Split, extractor: str = defaults.EXTRACTOR, input_size: int | None = None,
                     transfer: tuple[str, ...] = defaults.TRANSFER_EXTRACTORS, progress: bool = True,
                     realism_extractor: str = defaults.REALISM_EXTRACTOR):
    """(the train part methods may see, an Evaluator on the test part, the Realism of teaching images):
    everything an experiment needs from one dataset and one split."""
    from .realism import Realism

    parts = split_dataset(dataset, split)  # one copy of each part's images, whatever the number of feature spaces
    spaces: dict[tuple, tuple[TeachingData, TeachingData]] = {}

    def space(name: str, size: int | None) -> tuple[TeachingData, TeachingData]:
        if (name, size) not in spaces:
            spaces[name, size] = TeachingData.load(dataset, name, size, progress).split(split, parts)
        return spaces[name, size]

    sizes = other_spaces(dataset, (*transfer, realism_extractor))
    train, test = space(extractor, input_size)
    others = [space(name, sizes[name])[1] for name in transfer]
    return train, Evaluator(test, others), Realism(*space(realism_extractor, sizes[realism_extractor]))


def evaluate_sets(teaching_sets: list[TeachingSet], dataset: str | None = None, extractor: str = defaults.EXTRACTOR,
                  input_size: int | None = None, repeats: int = defaults.REPEATS, seed: int = 0,
                  skip_bad: bool = False, transfer: tuple[str, ...] = defaults.TRANSFER_EXTRACTORS,
                  proxy: str | None = None) -> tuple[list[dict], dict, ImageDataset]:
    """Fresh-student rows and the realism record (teaching_set.realism_record) of teaching sets, each
    scored on the test part of the dataset and split it records (or on `dataset`, a source loaded
    with each set's own options); also the first set's dataset. `proxy`: a proxy.json whose predicted
    human accuracy is reported beside the students."""
    from .data import load_dataset
    from .proxy import load_proxy
    from .realism import realism_record

    if proxy:
        load_proxy(proxy)  # a bad proxy.json fails in one line before any feature is computed
    parts: dict[str, tuple] = {}
    rows, images, method_of = [], {}, {}
    for ts in teaching_sets:
        spec = dict(ts.dataset["spec"])
        if dataset:
            spec.update(source=dataset, skip_bad=skip_bad)
        split = Split.from_record(ts.dataset.get("split"))
        key = json.dumps([spec, split.record()], sort_keys=True)
        if key not in parts:
            whole = load_dataset(**spec)
            parts[key] = (whole, *evaluation_parts(whole, split, extractor, input_size, transfer)[1:])
            if proxy:
                parts[key][1].students[PROXY + proxy] = {}
        _, evaluator, realism = parts[key]
        path = str(ts.path.resolve()) if ts.path else ts.method
        rows += [row | {"teaching_set": path} for row in evaluator.evaluate(ts, repeats=repeats, seed=seed)]
        images[path], method_of[path] = realism.score(ts), ts.method
    whole, _, realism = next(iter(parts.values()))
    return rows, realism_record(realism.reference_, images, method_of), whole


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
    """One row per (method, student, extractor), in first-seen order, marked where the student is the
    teacher's own."""
    cells: dict[tuple[str, str, str], dict] = {}
    for row in rows:
        cell = cells.setdefault((row["method"], row["student"], row.get("extractor", "")), {"values": [], "own": False})
        cell["values"].append(row["accuracy"])
        cell["own"] |= bool(row.get("own"))
    return [{"method": m, "student": s, "extractor": e, "own": c["own"], **interval(c["values"])}
            for (m, s, e), c in cells.items()]


def student_label(student: str, extractor: str, main_extractor: str) -> str:
    """'LC' for a student on the main extractor, 'LC alexnet' for a transfer student."""
    if student == "proxy":
        return f"humans, predicted ({extractor})"
    return student.upper() if extractor in ("", main_extractor) else f"{student.upper()} {extractor}"


def format_table(summary: list[dict]) -> str:
    """A plain-text table: method x student, mean and 95% interval; * marks the teacher's own student."""
    columns = list(dict.fromkeys((r["student"], r.get("extractor", "")) for r in summary))
    main = columns[0][1]
    methods = list(dict.fromkeys(r["method"] for r in summary))
    cell = {(r["method"], r["student"], r.get("extractor", "")): r for r in summary}
    width = max(12, *(len(m) + 1 for m in methods))
    lines = [f"{'method':<{width}}" + "".join(f"{student_label(s, e, main) + ' (95% CI)':>28}" for s, e in columns)]
    for m in methods:
        parts = []
        for s, e in columns:
            r = cell.get((m, s, e))
            if r is None:
                text = "-"
            elif r["ci_low"] is None:
                text = f"{r['mean']:.3f}"
            else:
                text = f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            parts.append((text + ("*" if r and r.get("own") else " ")).rjust(28))
        lines.append(f"{m:<{width}}" + "".join(parts))
    if any(r.get("own") for r in summary):
        lines.append("* the teacher's own student: the one it optimised the set against")
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

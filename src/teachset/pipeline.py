"""The experiment the demo runs: every teaching method x several seeds, fresh students, a report."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from . import __version__
from .atomic import atomic_write_text
from .data import ImageDataset
from .evaluate import Evaluator, summarize, write_results
from .methods import make_method, select_teaching_set
from .report import write_report
from .teaching_set import TeachingSet

# makes the teaching set of one seed; returns it with its training curve (None for selection)
Maker = Callable[[int], tuple[TeachingSet, list[dict] | None]]


def majority_rate(dataset: ImageDataset) -> float:
    return float(np.bincount(dataset.labels).max() / len(dataset))


def selection_makers(methods: list[str], dataset: ImageDataset, features: np.ndarray, per_class: int, extractor: str) -> dict[str, Maker]:
    for method in methods:
        make_method(method)  # fail on a bad name before any work
    return {m: (lambda seed, m=m: (select_teaching_set(m, dataset, features, per_class, seed=seed, extractor=extractor), None))
            for m in methods}


def teacher_makers(students: list[str], generator, generator_name: str, dataset: ImageDataset, features: np.ndarray,
                   per_class: int, extractor: str, input_size: int | None, options) -> dict[str, Maker]:
    from .methods.latent import teach_latent

    return {f"latent-{s}": (lambda seed, s=s: teach_latent(generator, dataset, features, replace(options, student=s, seed=seed),
                                                           per_class, extractor, input_size, generator_name=generator_name,
                                                           progress=False))
            for s in students}


def run_experiment(dataset: ImageDataset, features: np.ndarray, run_dir: Path, makers: dict[str, Maker], *, repeats: int,
                   extractor: str, input_size: int | None, options: dict) -> dict:
    """For each method and repeat r: a teaching set made with seed r, scored by fresh LC and NN
    students seeded r (the paper's protocol: teaching set and student both vary per repeat).
    Writes teaching_sets/<method>/seed<r>/ (with curve.jsonl for teachers), results.json/.csv,
    summary.csv and report.html."""
    evaluator = Evaluator(dataset, features, extractor, input_size)
    rows, timings = [], {}
    bar = tqdm(total=len(makers) * repeats, desc="teaching sets", unit="set")
    for name, make in makers.items():
        seconds = 0.0
        for r in range(repeats):
            start = time.perf_counter()
            ts, curve = make(r)
            seconds += time.perf_counter() - start
            folder = ts.save(run_dir / "teaching_sets" / name / f"seed{r}")
            if curve:
                atomic_write_text(folder / "curve.jsonl", "".join(json.dumps(c) + "\n" for c in curve))
            for row in evaluator.evaluate(ts, repeats=1, seed=r):
                row["teaching_set"] = str(Path(row["teaching_set"]).relative_to(run_dir))
                rows.append(row)
            bar.update()
        timings[name] = seconds / repeats
    bar.close()
    summary = summarize(rows)
    context = {
        "code_version": __version__,
        "options": options,
        "extractor": extractor,
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "spec": dataset.spec,
                    "description": dataset.describe(), "info": dataset.info},
        "majority_rate": majority_rate(dataset),
        "seconds_per_teaching_set": timings,
    }
    write_results(run_dir, rows, summary, context)
    write_report(run_dir / "results.json")
    return {"rows": rows, "summary": summary, **context}

"""The selection experiment the demo runs: every method x several seeds, fresh students, a report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__
from .data import ImageDataset
from .evaluate import Evaluator, summarize, write_results
from .methods import make_method, select_teaching_set
from .report import write_report


def majority_rate(dataset: ImageDataset) -> float:
    return float(np.bincount(dataset.labels).max() / len(dataset))


def run_selection_experiment(dataset: ImageDataset, features: np.ndarray, run_dir: Path, *, methods: list[str],
                             per_class: int, repeats: int, extractor: str, input_size: int | None, options: dict) -> dict:
    """For each method and repeat r: a teaching set made with seed r, scored by fresh LC and NN
    students seeded r (the paper's protocol: teaching set and student both vary per repeat).
    Writes teaching_sets/<method>/seed<r>/, results.json/.csv, summary.csv and report.html."""
    evaluator = Evaluator(dataset, features, extractor, input_size)
    rows, timings = [], {}
    for method in methods:
        make_method(method)  # fail on a bad name before any work
    for method in tqdm(methods, desc="methods", unit="method"):
        seconds = 0.0
        for r in range(repeats):
            start = time.perf_counter()
            ts = select_teaching_set(method, dataset, features, per_class, seed=r, extractor=extractor)
            seconds += time.perf_counter() - start
            ts.save(run_dir / "teaching_sets" / method / f"seed{r}")
            for row in evaluator.evaluate(ts, repeats=1, seed=r):
                row["teaching_set"] = str(Path(row["teaching_set"]).relative_to(run_dir))
                rows.append(row)
        timings[method] = seconds / repeats
    summary = summarize(rows)
    context = {
        "code_version": __version__,
        "options": options,
        "extractor": extractor,
        "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint, "spec": dataset.spec,
                    "description": dataset.describe(), "info": dataset.info},
        "majority_rate": majority_rate(dataset),
        "selection_seconds_per_set": timings,
    }
    write_results(run_dir, rows, summary, context)
    write_report(run_dir / "results.json")
    return {"rows": rows, "summary": summary, **context}

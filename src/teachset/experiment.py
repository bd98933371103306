"""An experiment: teaching methods x seeds, each teaching set scored by fresh students, a report.

For each method and repeat r: a teaching set made with seed r, scored by fresh LC and NN
students seeded r (the paper's protocol: teaching set and student both vary per repeat).
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from .evaluate import Evaluator, results_context, summarize, write_results
from .methods import Method, TeachingData
from .report import write_report


def run_experiment(data: TeachingData, methods: dict[str, Method], run_dir: Path, *, per_class: int, repeats: int,
                   options: dict) -> dict:
    """Writes teaching_sets/<label>/seed<r>/ (each with its curve where it has one), results.json/.csv,
    summary.csv and report.html into run_dir; returns the rows, the summary and the context."""
    evaluator = Evaluator(data)
    rows, timings = [], {}
    bar = tqdm(total=len(methods) * repeats, desc="teaching sets", unit="set")
    for label, method in methods.items():
        seconds = 0.0
        for r in range(repeats):
            start = time.perf_counter()
            ts = method.make(data, per_class, seed=r)
            seconds += time.perf_counter() - start
            ts.save(run_dir / "teaching_sets" / label / f"seed{r}")
            for row in evaluator.evaluate(ts, repeats=1, seed=r):
                rows.append(row | {"method": label, "teaching_set": str(Path(row["teaching_set"]).relative_to(run_dir))})
            bar.update()
        timings[label] = seconds / repeats
    bar.close()
    summary = summarize(rows)
    context = results_context(data.dataset, data.extractor, options, seconds_per_teaching_set=timings)
    write_results(run_dir, rows, summary, context)
    write_report(run_dir / "results.json")
    return {"rows": rows, "summary": summary, **context}

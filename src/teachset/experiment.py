"""An experiment: teaching methods x seeds on one dataset and split, each teaching set scored by fresh
students on the held-out test images and its images' realism measured, then the report.

For each method and repeat r: a teaching set made with seed r from the train split, scored by fresh
LC and NN students seeded r (the paper's protocol: teaching set and student both vary per repeat),
on the teachers' extractor and on the transfer extractors no teacher used.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from . import defaults
from .data import ImageDataset
from .data.splits import Split
from .evaluate import evaluation_parts, majority_rate, results_context, summarize, write_results
from .methods import Method
from .realism import realism_record
from .report import write_report


def run_experiment(dataset: ImageDataset, methods: dict[str, Method], run_dir: Path, *, per_class: int, repeats: int,
                   options: dict, split: Split = Split(), extractor: str = defaults.EXTRACTOR, input_size: int | None = None,
                   transfer: tuple[str, ...] = defaults.TRANSFER_EXTRACTORS) -> dict:
    """Writes teaching_sets/<label>/seed<r>/ (each with its curve where it has one), results.json/.csv,
    summary.csv and report.html into run_dir; returns the rows, the summary and the context."""
    train, evaluator, realism = evaluation_parts(dataset, split, extractor, input_size, transfer)
    train.dataset.check_per_class(per_class)
    rows, timings, images, method_of = [], {}, {}, {}
    bar = tqdm(total=len(methods) * repeats, desc="teaching sets", unit="set")
    for label, method in methods.items():
        seconds = 0.0
        for r in range(repeats):
            start = time.perf_counter()
            ts = method.make(train, per_class, seed=r)
            seconds += time.perf_counter() - start
            path = str(ts.save(run_dir / "teaching_sets" / label / f"seed{r}").relative_to(run_dir))
            rows += [row | {"method": label, "teaching_set": path} for row in evaluator.evaluate(ts, repeats=1, seed=r)]
            images[path], method_of[path] = realism.score(ts), label
            bar.update()
        timings[label] = seconds / repeats
    bar.close()
    context = results_context(dataset, extractor, options, seconds_per_teaching_set=timings,
                              majority_rate=majority_rate(evaluator.data.dataset),
                              split={**split.record(), "train": len(train.dataset), "test": len(evaluator.data.dataset)},
                              realism=realism_record(realism.reference_, images, method_of))
    summary = summarize(rows)
    write_results(run_dir, rows, summary, context)
    write_report(run_dir / "results.json")
    return {"rows": rows, "summary": summary, **context}

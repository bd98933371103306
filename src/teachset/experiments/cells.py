"""One cell of a grid, as any executor runs it: make the teaching set on the train split, save it,
score it with every student on the test split, and measure its images' realism.

Everything a cell needs travels in a Task of plain values, so that a local process or a Ray
worker runs exactly the same code; each process loads a dataset, its split and its features once
(from the on-disk caches) and keeps them for the cells that follow."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data.splits import Split
from .spec import Cell, DatasetSpec, MethodSpec

_CONTEXTS: dict[str, tuple] = {}


@dataclass(frozen=True)
class Task:
    """Cells of one dataset, extractor, method and per-class count, differing in their seed: a teacher
    makes their sets together (one batch through its networks), a selection method one by one."""

    cells: tuple[Cell, ...]
    dataset: DatasetSpec  # with its generator: a checkpoint path, or None
    method: MethodSpec
    split: Split
    transfer: tuple[str, ...]
    realism: str
    students: tuple[str, ...]
    run_dir: str
    workers: int = 1
    progress: bool = False


def context(task: Task) -> tuple:
    """(train part, evaluator on the test part, realism) of the task's dataset and extractor, once per process."""
    from ..data import load_dataset
    from ..evaluate import evaluation_parts

    key = json.dumps([asdict(task.dataset), task.cells[0].extractor, task.split.record(), task.transfer, task.realism,
                      task.students], sort_keys=True, default=str)
    if key not in _CONTEXTS:
        dataset = load_dataset(**task.dataset.load_args())
        train, evaluator, realism = evaluation_parts(dataset, task.split, task.cells[0].extractor, None, task.transfer,
                                                     progress=task.progress, realism_extractor=task.realism)
        evaluator.students = {s: {} for s in task.students}
        _CONTEXTS.clear()  # one context at a time: a grid runs dataset by dataset
        _CONTEXTS[key] = (train, evaluator, realism)
    return _CONTEXTS[key]


def teaching_set_folder(cell: Cell) -> str:
    """Where a cell's teaching set lives, relative to the run folder."""
    return f"teaching_sets/{cell.dataset}/{cell.extractor}/{cell.method}/{cell.per_class}pc/seed{cell.seed}"


def run_cells(task: Task) -> list[dict]:
    """Make, save, score and measure the task's teaching sets; one result per cell, in order."""
    from ..evaluate import majority_rate
    from ..methods import make_method
    from ..threads import configure_threads

    configure_threads(task.workers)
    train, evaluator, realism = context(task)
    params = dict(task.method.params)
    if task.method.name == "latent" and "generator" not in params:
        params["generator"] = task.dataset.generator
    start = time.perf_counter()
    sets = make_method(task.method.name, **params).make_many(train, task.cells[0].per_class, [c.seed for c in task.cells],
                                                             task.progress)
    seconds = (time.perf_counter() - start) / len(sets)
    test = evaluator.data.dataset
    about = {"dataset": {**test.record(), "description": test.describe(), "info": test.info}, "majority_rate": majority_rate(test),
             "split": {**task.split.record(), "train": len(train.dataset), "test": len(test)},
             "realism_reference": realism.reference_}
    results = []
    for cell, teaching_set in zip(task.cells, sets):
        folder = teaching_set_folder(cell)
        teaching_set.save(Path(task.run_dir) / folder, overwrite=True)  # a cell killed before its row is made again
        rows = evaluator.evaluate(teaching_set, repeats=1, seed=cell.seed)
        results.append({"teaching_set": folder, "method_name": teaching_set.method, "seconds": seconds,
                        "realism": realism.score(teaching_set), "context": about,
                        "rows": [{k: r[k] for k in ("student", "extractor", "own", "student_seed", "accuracy", "n_test")}
                                 for r in rows]})
    return results

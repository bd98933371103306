"""Running a grid: its generators first (trained on each dataset's train split where asked, with
their quality gates shown before any teaching), then every cell not yet in the store through an
executor, each written to the store as it finishes; then the views: results.json, CSVs and an
HTML report per (dataset, extractor, per-class count), read from the store."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from tqdm import tqdm

from .. import __version__
from ..atomic import write_json
from .cells import Task, run_cells
from .executors import make_executor
from .spec import DatasetSpec, Experiment
from .store import Store

GATES = {"kid": 0.05, "class_consistency_gap": 0.05, "diversity": 0.8}  # what a generator should reach before teaching


def generator_gates(quality: dict) -> dict[str, tuple[float, bool]]:
    """Each gate's value and whether it is met: KID below 0.05, class consistency within 0.05 of real
    held-out images, within-class diversity at least 0.8 of real."""
    samples, floor = quality["samples"], quality["floor"]
    gap = floor["class_consistency"] - samples["class_consistency"]
    return {"KID": (samples["kid"], samples["kid"] < GATES["kid"]),
            "class consistency gap to real": (gap, gap <= GATES["class_consistency_gap"]),
            "diversity vs real": (samples["diversity_vs_real"], samples["diversity_vs_real"] >= GATES["diversity"])}


def prepare_generator(spec: DatasetSpec, experiment: Experiment, run_dir: Path, device: str = "auto") -> str | None:
    """The generator checkpoint for a dataset: the one given, or one trained (or its training resumed)
    on the dataset's train split in run_dir/generators/<label>, with its quality gates printed."""
    if spec.generator != "train":
        return spec.generator
    from ..data import load_dataset
    from ..generators.quality import evaluate_generator, format_quality
    from ..generators.train import GeneratorTrainer, TrainOptions, resume_generator

    folder = run_dir / "generators" / spec.label
    checkpoint = folder / "checkpoint"
    if (folder / "finished").is_file():
        return str(checkpoint)
    dataset = load_dataset(**spec.load_args())
    print(f"training a generator on {spec.label}'s train split for {experiment.generator_minutes:g} minutes "
          f"(resumable: run again with --resume)", file=sys.stderr)
    if (folder / "resume.pt").is_file():
        trainer = resume_generator(folder, dataset, device=device)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        options = TrainOptions(minutes=experiment.generator_minutes)
        write_json(folder / "options.json", {"dataset": dataset.spec, "split": experiment.split.record(),
                                             "train": dataclasses.asdict(options), "command": ""})
        trainer = GeneratorTrainer(options, folder, device, split=experiment.split).fit(dataset)
    quality = evaluate_generator(trainer.ema_, dataset, out_dir=folder / "eval")
    print(format_quality(quality), file=sys.stderr)
    gates = generator_gates(quality)
    for name, (value, met) in gates.items():
        print(f"  {name}: {value:.3f} {'met' if met else 'NOT met'}", file=sys.stderr)
    if not all(met for _, met in gates.values()):
        print(f"warning: the generator of {spec.label} misses a quality gate: its teaching images may not look real (the "
              "report measures each one); a longer --generator-minutes, or a GPU, trains a better one", file=sys.stderr)
    write_json(folder / "finished", {"gates": {k: list(v) for k, v in gates.items()}})
    return str(checkpoint)


def run_grid(experiment: Experiment, run_dir: str | Path, *, workers: int = 1, executor: str = "pool",
             ray_address: str | None = None, progress: bool = True) -> Store:
    """Run every cell of `experiment` not yet in run_dir's store; returns the store (views written)."""
    run_dir = Path(run_dir)
    store = Store(run_dir)
    try:
        store.bind(experiment.canonical(), experiment.digest())
        generators = {d.label: prepare_generator(d, experiment, run_dir) for d in experiment.datasets}
        done = store.finished()
        pending = [cell for cell in experiment.cells() if cell.key not in done]
        if workers > 1 and ray_address is None:  # local workers would each compute the same features at once
            warm_features(experiment, pending, progress)
        tasks = [Task(cells, dataclasses.replace(experiment.dataset(cells[0].dataset), generator=generators[cells[0].dataset]),
                      experiment.method(cells[0].method), experiment.split, experiment.transfer, experiment.realism,
                      experiment.students, str(run_dir), workers, progress and workers <= 1)
                 for cells in batches(experiment, pending, workers)]
        bar = tqdm(total=len(experiment.cells()), initial=len(experiment.cells()) - len(pending), desc="teaching sets",
                   unit="set", disable=not progress)
        pool = make_executor(executor, workers, ray_address)
        try:
            for task, results in pool.map(run_cells, tasks):
                for cell, result in zip(task.cells, results):
                    store.add(cell, result)
                bar.update(len(task.cells))
        finally:
            pool.close()
            bar.close()
        finish_first_sets(experiment, store, run_dir, generators)
        write_views(experiment, store, run_dir)
        return store
    except BaseException:
        store.close()
        raise


def warm_features(experiment: Experiment, pending: list, progress: bool) -> None:
    """Every feature space the pending cells read (the students', realism's and the teachers' own extractors),
    computed once in this process on every core and cached, so that local workers read them instead of each
    computing them at the same time."""
    from ..data import load_dataset
    from ..evaluate import other_spaces
    from ..features.cache import dataset_features
    from ..methods import make_method
    from ..threads import configure_threads

    configure_threads(1)
    methods = [experiment.method(label) for label in {cell.method for cell in pending}]
    teachers = {name for m in methods for name in getattr(make_method(m.name, **m.params), "extractors", ())}
    for spec in experiment.datasets:
        if any(cell.dataset == spec.label for cell in pending):
            dataset = load_dataset(**spec.load_args())
            others = other_spaces(dataset, (*experiment.transfer, experiment.realism, *sorted(teachers)))
            spaces = {(e, None) for e in experiment.extractors} | set(others.items())  # what evaluation_parts and the teachers load
            for name, input_size in sorted(spaces, key=str):
                dataset_features(dataset, name, input_size, progress=progress)


def batches(experiment: Experiment, cells: list, workers: int) -> list[tuple]:
    """The cells as tasks: each (dataset, extractor, method, per-class count)'s seeds together, a
    teacher's split into one batch per worker (so that the workers share them), a selection method's
    in one task."""
    from ..methods import METHODS

    grouped: dict[tuple, list] = {}
    for cell in cells:
        grouped.setdefault((cell.dataset, cell.extractor, cell.method, cell.per_class), []).append(cell)
    tasks = []
    for (_, _, method, _), members in grouped.items():
        parts = 1 if METHODS[experiment.method(method).name].kind == "selection" else min(workers, len(members))
        tasks += [tuple(members[i::parts]) for i in range(parts)]
    return tasks


def first_sets(store: Store) -> dict[tuple, dict]:
    """Each (dataset, extractor, per-class count, method)'s lowest-seed cell: the set the report shows."""
    first: dict[tuple, dict] = {}
    for cell in store.cells():
        key = (cell["dataset"], cell["extractor"], cell["per_class"], cell["method"])
        if key not in first or cell["seed"] < first[key]["seed"]:
            first[key] = cell
    return first


def finish_first_sets(experiment: Experiment, store: Store, run_dir: Path, generators: dict[str, str | None]) -> None:
    """For the sets the report shows: real images exported at their original resolution, and, when the
    experiment asks and the dataset has a generator, counterfactual strips (each made once)."""
    from ..data import load_dataset
    from ..explain import explain, load_explanations
    from ..generators import load_generator
    from ..methods import TeachingData
    from ..teaching_set import TeachingSet

    for (dataset_label, extractor, _, _), cell in sorted(first_sets(store).items()):
        teaching_set = TeachingSet.load(run_dir / cell["teaching_set"])
        if teaching_set.sources and not teaching_set.original_files():
            teaching_set.export_originals()
        if experiment.explain and generators.get(dataset_label) and not load_explanations(teaching_set.path):
            dataset = load_dataset(**experiment.dataset(dataset_label).load_args())
            train, _ = TeachingData.load(dataset, extractor, progress=False).split(experiment.split)
            explain(teaching_set, load_generator(generators[dataset_label]), train, progress=True)


def groups(experiment: Experiment) -> list[tuple[str, str, int]]:
    return [(d.label, e, k) for d in experiment.datasets for e in experiment.extractors for k in experiment.per_class]


def group_folder(experiment: Experiment, run_dir: Path, group: tuple[str, str, int]) -> Path:
    """The run folder itself for a grid of one group, else run_dir/reports/<dataset>-<extractor>-<k>pc."""
    return run_dir if len(groups(experiment)) == 1 else run_dir / "reports" / f"{group[0]}-{group[1]}-{group[2]}pc"


def write_views(experiment: Experiment, store: Store, run_dir: Path) -> list[Path]:
    """results.json, results.csv, summary.csv and report.html per group, all read from the store."""
    import os

    from ..evaluate import summarize, write_results
    from ..realism import realism_record
    from ..report import write_report

    rows, cells = store.rows(), store.cells()
    reports = []
    for group in groups(experiment):
        mine = [c for c in cells if (c["dataset"], c["extractor"], c["per_class"]) == group]
        if not mine:
            continue
        folder = group_folder(experiment, run_dir, group)
        folder.mkdir(parents=True, exist_ok=True)
        relative = lambda path: os.path.relpath(run_dir / path, folder)  # noqa: E731
        table = [{"method": r["method"], "teaching_set": relative(r["teaching_set"]), "set_seed": r["seed"],
                  "student": r["student"], "extractor": r["eval_extractor"], "own": bool(r["own"]), "repeat": 0,
                  "student_seed": r["student_seed"], "accuracy": r["accuracy"], "n_test": r["n_test"]}
                 for r in rows if (r["dataset"], r["extractor"], r["per_class"]) == group]
        about = mine[0]["context"]
        realism = realism_record(about["realism_reference"], {relative(c["teaching_set"]): c["realism"] for c in mine},
                                 {relative(c["teaching_set"]): c["method"] for c in mine})
        context = {"code_version": __version__, "options": {"experiment": experiment.canonical(), "group": list(group)},
                   "extractor": group[1], "dataset": about["dataset"], "majority_rate": about["majority_rate"],
                   "split": about["split"], "realism": realism,
                   "seconds_per_teaching_set": {m: sum(c["seconds"] for c in mine if c["method"] == m) /
                                                sum(1 for c in mine if c["method"] == m) for m in {c["method"] for c in mine}}}
        write_results(folder, table, summarize(table), context)
        reports.append(write_report(folder / "results.json"))
    return reports

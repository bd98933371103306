"""A whole GTN run on a dataset, into a numbered run folder (what `teachset gtn train` does):

    options.json          written first: the dataset, the GTN options, the run options, the command
    curve.jsonl           one record per outer step, flushed as it is written
    samples/*.png         a grid of generated images every `sample_every` steps, and final.png
    checkpoint/           gtn.safetensors + gtn.json, every `checkpoint_every` steps and at the end
    results.json          few-step test accuracy of fresh learners (and of their ensemble), timing
    teaching_set/         the exported generated images (not for the real-data control)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import defaults
from ..atomic import write_json
from ..data.splits import Split, split_dataset
from ..options import check_fields, option
from .artifacts import export_teaching_set, save_checkpoint, save_samples
from .options import GTNOptions, check_data
from .train import GTNTrainer


@dataclass
class RunOptions:
    """What a run does around the meta-training: the scoring at the end, the sample grids and
    checkpoints on the way, and the exported teaching set."""

    final_learners: int = option(10, "fresh learners scored at the end (and ensembled)", minimum=1)
    export_per_class: int = option(10, "generated images per class in the exported teaching set", minimum=1)
    sample_every: int = option(100, "save a grid of generated images every this many outer steps (0: only at the end)",
                               minimum=0)
    checkpoint_every: int = option(100, "save the checkpoint every this many outer steps (0: only at the end)", minimum=0)

    def __post_init__(self):
        check_fields(self)


def train_gtn(dataset, options: GTNOptions, run: RunOptions | None = None, out: str | Path = defaults.RUNS_DIR, *,
              split: Split = Split(), command: str = "", progress: bool = True) -> Path:
    """Meta-train a GTN (or a control) on the train split of `dataset`, scoring fresh learners on its
    test split; return the run folder, made under `out` once the options and the data have been
    checked. `command` is recorded in options.json."""
    from ..runs import new_run_dir

    run = run or RunOptions()
    check_data(options, dataset.image_size, dataset.num_classes, dataset.class_counts())
    parts = split_dataset(dataset, split)
    train, test = parts.train_index, parts.test_index
    record = parts.train.record()
    run_dir = new_run_dir(out, f"gtn-{dataset.name}-{options.source}",
                          {"dataset": dataset.spec, "split": split.record(), "gtn": options.to_json(), **asdict(run),
                           "command": command})
    has_images = options.source != "real"

    def on_step(trainer: GTNTrainer, _record: dict) -> None:
        if has_images and run.sample_every and trainer.step_ % run.sample_every == 0:
            save_samples(trainer.teacher_, run_dir / "samples" / f"step-{trainer.step_:06d}.png")
        if run.checkpoint_every and trainer.step_ % run.checkpoint_every == 0:
            save_checkpoint(trainer, run_dir / "checkpoint", record, dataset.class_names)

    start = time.perf_counter()
    trainer = GTNTrainer(options).fit(dataset.tensor(train), torch.from_numpy(dataset.labels[train]), dataset.tensor(test),
                                      torch.from_numpy(dataset.labels[test]), num_classes=dataset.num_classes,
                                      progress=progress, curve_path=run_dir / "curve.jsonl", on_step=on_step)
    save_checkpoint(trainer, run_dir / "checkpoint", record, dataset.class_names)
    scores = trainer.evaluate(run.final_learners)
    write_json(run_dir / "results.json", {
        "outer_steps": trainer.step_, "seconds": time.perf_counter() - start,
        "seconds_per_outer_step": trainer.seconds_ / max(1, trainer.step_), "few_step_test_accuracy": scores,
        "test_size": len(test)})
    if has_images:
        save_samples(trainer.teacher_, run_dir / "samples" / "final.png")
        per_class = min(run.export_per_class, options.inner_steps * options.batch_size // dataset.num_classes)
        export_teaching_set(trainer.teacher_, options, record, dataset.class_names, per_class, options.seed).save(
            run_dir / "teaching_set")
    return run_dir

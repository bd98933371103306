"""What a GTN run leaves behind: checkpoint (safetensors + JSON, no pickled code), sample grids,
and the exported TeachingSet of generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_dir, read_format_json, write_json
from ..errors import TeachsetError
from ..imaging import save_grid
from ..teaching_set import TeachingSet
from .options import GTNOptions
from .train import build_teacher

FORMAT = "teachset.gtn/1"
WEIGHTS_FILE, CONFIG_FILE = "gtn.safetensors", "gtn.json"


def save_checkpoint(trainer, folder: str | Path, dataset: dict, class_names: list[str]) -> Path:
    """folder/gtn.safetensors (the teacher's tensors) + folder/gtn.json (options, shape, classes, step), of a
    fitted GTNTrainer; the folder is written beside and renamed into place, replacing any earlier one."""
    folder = Path(folder)
    state = {k: v.detach().contiguous() for k, v in trainer.teacher_.state_dict().items()}
    config = {"format": FORMAT, "options": trainer.options.to_json(), "dataset": dataset,
              "image_shape": list(trainer.image_shape_), "class_names": class_names, "step": trainer.step_}
    with atomic_dir(folder, overwrite=True) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE))
        write_json(tmp / CONFIG_FILE, config)
    return folder


def load_checkpoint(folder: str | Path):
    """(options, teacher, config) of a checkpoint folder written by save_checkpoint (gtn or distill)."""
    folder = Path(folder)
    config = read_format_json(folder / CONFIG_FILE, FORMAT, f"'{folder}' is not a GTN checkpoint: it has no {CONFIG_FILE}")
    options = GTNOptions(**config["options"])
    if options.source == "real":
        raise TeachsetError(f"'{folder}' is a real-data control; it has no generator to load")
    teacher = build_teacher(options, tuple(config["image_shape"]), len(config["class_names"]))
    teacher.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return options, teacher, config


def generated_batches(teacher, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Every inner step's batch, in order: images (T, B, C, S, S), hard labels (T, B), soft labels
    (T, B, K) or None, noise (T, B, noise_dim) or None (dataset distillation)."""
    rng = torch.Generator().manual_seed(seed)
    images, labels, soft, noise = [], [], [], []
    with torch.no_grad():
        for t in range(teacher.steps):
            key = teacher.draw(t, rng)
            x, target = teacher.make(t, key)
            images.append(x)
            labels.append(teacher.labels)
            soft.append(target if target.dtype != torch.long else None)
            if hasattr(teacher, "noise"):
                noise.append(teacher.noise[t] if key is None else key)
    return (torch.stack(images), torch.stack(labels), torch.stack(soft) if soft[0] is not None else None,
            torch.stack(noise) if noise else None)


def save_samples(teacher, path: str | Path, rows: int = 10, seed: int = 0) -> Path:
    """The paper's Fig. 2c layout: one column per class, rows from evenly spaced inner steps (early at the top)."""
    images, labels, _, _ = generated_batches(teacher, seed)
    steps, num_classes = len(images), int(labels.max()) + 1
    picked = []
    for t in np.linspace(0, steps - 1, min(rows, steps)).round().astype(int):
        first = [int(torch.nonzero(labels[t] == c)[0]) for c in range(num_classes)]
        picked.append(images[t, first])
    return save_grid(torch.cat(picked), path, ncol=num_classes)


def export_teaching_set(teacher, options: GTNOptions, dataset: dict, class_names: list[str], per_class: int,
                        seed: int = 0) -> TeachingSet:
    """`per_class` generated images per class, evenly spaced over the inner steps, as a TeachingSet
    (labels: the conditioning class; with soft labels the exported label is the most likely class)."""
    images, labels, soft, noise = generated_batches(teacher, seed)
    flat_x, flat_y = images.flatten(0, 1), labels.flatten()
    if soft is not None:
        flat_y = soft.flatten(0, 1).argmax(1)
    chosen = []
    for c in range(len(class_names)):
        members = torch.nonzero(flat_y == c).flatten()
        if len(members) < per_class:
            raise TeachsetError(f"the generator made {len(members)} images of class '{class_names[c]}', fewer than the "
                                f"{per_class} per class asked for; ask for fewer")
        chosen += members[np.linspace(0, len(members) - 1, per_class).round().astype(int)].tolist()
    params = {**options.to_json(), "per_class": per_class}
    return TeachingSet.generated(flat_x[chosen], flat_y[chosen], class_names, dataset,
                                 "gtn" if options.source == "gtn" else "gtn-distill", params, seed,
                                 latents=None if noise is None else noise.flatten(0, 1)[chosen])

"""Counterfactual teaching aids: for each image of a teaching set, how it would look as each other
class (Schut et al. 2021; Singla et al. 2019).

From the image's latent code (a generated image's own, or a real image inverted), the code moves
along a path that raises the target class under the proxy (LC students on real train images, in
each of the teacher's feature spaces, their log-probabilities averaged so the path cannot win by
fooling one network) while it stays close to where it started (the change should be minimal) and
on the generator's manifold (the target class's prior). The path's k frames (the first is the
image itself, the last the counterfactual, those between where the proxy's probability of the
target first reaches evenly spaced levels, so that the change shows step by step) are written as a strip with the proxy's probability of
the target under each, beside a map of where the image changed from the first frame to the last.

    explanations/                   inside the teaching set's folder, written atomically
      <i>_to_<class>.png            the strip of k frames
      <i>_to_<class>_change.png     where it changed (brighter: more)
      explanations.json             per image and target: files, the proxy's probabilities per frame, options
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import defaults
from .atomic import atomic_dir
from .errors import TeachsetError
from .generators import Generator
from .imaging import image_grid, png_bytes, to_uint8
from .options import check_fields, option
from .students import LinearStudent
from .teaching_data import TeachingData
from .teaching_set import TeachingSet

FOLDER, META_FILE = "explanations", "explanations.json"
PROXY_ITERATIONS = 200  # L-BFGS iterations of each proxy student on the real train images


@dataclass
class ExplainOptions:
    frames: int = option(5, "frames per strip, the image itself first and the counterfactual last", minimum=2)
    steps: int = option(150, "optimisation steps of a path", minimum=1)
    lr: float = option(0.05, "Adam step on the code", above=0)
    proximity_weight: float = option(1.0, "weight of the whitened squared distance to the start (the change stays minimal)",
                                     minimum=0)
    realism_weight: float = option(0.1, "weight of the code's whitened squared distance to the target class's prior",
                                   minimum=0)
    extractors: tuple[str, ...] = option((defaults.EXTRACTOR, *defaults.TEACHER_EXTRACTORS),
                                         "the proxy's feature spaces: an LC student on real train images in each")

    def __post_init__(self):
        check_fields(self)


class Proxy:
    """LC students trained on the real train images in several frozen feature spaces; differentiable in the images.

    Trained by L-BFGS: the LC student's default Newton solve is exact through a (n C)^2 system, made for
    teaching sets; on a whole train split (MNIST: 4,000 images x 10 classes) it needs tens of GB."""

    def __init__(self, data: TeachingData, extractors: tuple[str, ...]):
        self.spaces = []
        for name in extractors:
            space = data if name == data.extractor else TeachingData.load(
                data.dataset, name, defaults.network_input_size(name, data.dataset.image_size), progress=False)
            student = LinearStudent(optimizer="lbfgs", epochs=PROXY_ITERATIONS).fit(space.features, data.dataset.labels,
                                                                                   data.dataset.num_classes)
            W, b = (torch.from_numpy(a).float() for a in (student.coef_, student.intercept_))
            self.spaces.append((space.network, W, b))

    def log_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(n, C), the mean over feature spaces of each student's log-probabilities."""
        return torch.stack([F.log_softmax(net(images) @ W.T + b, dim=1) for net, W, b in self.spaces]).mean(0)


def counterfactual_path(generator: Generator, proxy: Proxy, z0: torch.Tensor, label: int, target: int,
                        options: ExplainOptions) -> tuple[torch.Tensor, list[float]]:
    """The path's frames (k, C, S, S) from the code z0 of class `label` towards `target`, and the
    proxy's probability of `target` under each."""
    y, t = torch.tensor([label]), torch.tensor([target])
    start = generator.whiten(z0[None], y).detach()
    z = z0[None].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=options.lr)
    path, reached = [z0[None].clone()], []  # reached[i]: the proxy's p(target) at path[i]
    for _ in range(options.steps):
        log_p = proxy.log_probabilities(generator.generate(z, y))[0, target]
        reached.append(float(log_p.detach().exp()))
        loss = -log_p + options.proximity_weight * (generator.whiten(z, y) - start).pow(2).sum() / generator.latent_dim
        loss = loss + options.realism_weight * generator.prior_nll(z, t).sum() / generator.latent_dim
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        path.append(z.detach().clone())
    # frames where the proxy's probability first reaches evenly spaced levels (most of a path's change comes in its
    # first steps, so frames evenly spaced in steps repeated the last one): the strip shows the change progressively
    highest = np.maximum.accumulate(reached)
    levels = np.linspace(reached[0], highest[-1], options.frames)[1:-1]
    index = [0, *np.minimum(np.searchsorted(highest, levels), len(reached) - 1), len(path) - 1]
    chosen = torch.cat([path[i] for i in index])
    with torch.no_grad():
        frames = generator.generate(chosen, y.repeat(len(chosen)))
        probabilities = proxy.log_probabilities(frames)[:, target].exp()
    return frames, [float(p) for p in probabilities]


def change_map(first: torch.Tensor, last: torch.Tensor) -> np.ndarray:
    """Where an image changed: |last - first| over the channels, scaled so its largest change is white."""
    change = (last - first).abs().mean(0, keepdim=True)
    return to_uint8(change / change.max().clamp_min(1e-6))


def explain(teaching_set: TeachingSet, generator: Generator, data: TeachingData,
            options: ExplainOptions | None = None, progress: bool = False) -> Path:
    """Write the explanations of every image of `teaching_set` (saved, with a path) into its folder."""
    from tqdm import tqdm

    from .generators.invert import invert
    from .methods.latent import check_generator_fits

    options = options or ExplainOptions()
    if teaching_set.path is None:
        raise TeachsetError("save the teaching set first: its explanations are written into its folder")
    if len(teaching_set.class_names) < 2:
        raise TeachsetError("a teaching set of one class has no other class to explain towards")
    check_generator_fits(generator.freeze(), data)
    labels = torch.from_numpy(teaching_set.labels)
    if teaching_set.latents is not None and teaching_set.latents.shape[1] == generator.latent_dim:
        codes = torch.from_numpy(teaching_set.latents)
    else:  # real images (or codes of another generator): their codes, by inversion
        codes, _ = invert(generator, teaching_set.tensor(), labels, measure=False)
    proxy = Proxy(data, options.extractors)
    entries, start = [], time.perf_counter()
    with atomic_dir(teaching_set.path / FOLDER, overwrite=True) as tmp:
        pairs = [(i, t) for i in range(len(teaching_set)) for t in range(len(teaching_set.class_names))
                 if t != teaching_set.labels[i]]
        for i, target in tqdm(pairs, desc="explaining", unit="path", disable=not progress):
            frames, probabilities = counterfactual_path(generator, proxy, codes[i], int(labels[i]), target, options)
            name = f"{i:02d}_to_{_safe(teaching_set.class_names[target])}"
            (tmp / f"{name}.png").write_bytes(png_bytes(image_grid(frames, ncol=len(frames))))
            (tmp / f"{name}_change.png").write_bytes(png_bytes(change_map(frames[0], frames[-1])))
            entries.append({"image": i, "from": teaching_set.class_names[int(labels[i])],
                            "to": teaching_set.class_names[target], "strip": f"{name}.png", "change": f"{name}_change.png",
                            "probabilities": probabilities})
        (tmp / META_FILE).write_text(json.dumps({"options": asdict(options), "generator": str(getattr(generator, "source", "")),
                                                 "seconds_per_path": (time.perf_counter() - start) / max(1, len(entries)),
                                                 "paths": entries}, indent=2))
    return teaching_set.path / FOLDER


def load_explanations(folder: str | Path) -> dict | None:
    """The explanations written into a teaching set's folder (None where there are none)."""
    path = Path(folder) / FOLDER / META_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"

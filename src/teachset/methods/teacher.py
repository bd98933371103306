"""The machine teacher (Doron et al. 2021, sections 3-4), shared by the latent-space and pixel-space teachers.

Each teacher epoch: render the b teaching images from the parameters (latent codes through a
frozen generator, or the pixels themselves), take their features through the frozen extractor,
train the student on them, score it on the whole dataset's cached features, and move the
parameters down the gradient of that score:
- LC student: trained to the optimum of its strongly convex problem (Newton, the same learner as
  the evaluation's LC); the gradient flows through its training by the implicit function theorem
  (teachset.hypergrad). That optimum is unique, so the init the student is reset to cannot change
  the trained student: the Newton solve starts from the previous epoch's optimum, which makes it
  a step or two instead of a dozen (stopping at the same tolerance). With hypergradient="unrolled"
  the student is `student_epochs` steps of gradient descent from its init, which is then reset to
  the same init every epoch (the paper's choice) or drawn fresh (init="fresh");
- NN student: the teaching images are the prototypes; plain backpropagation of eq. 4's loss.
Gradients are taken with respect to the teaching parameters only; F and G stay frozen.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import TeachsetError
from ..features import FrozenExtractor
from ..hypergrad import SOLVERS, augment, implicit_surrogate, newton, outer_loss_and_grad, unrolled_theta
from ..students import class_scores, init_linear


@dataclass
class TeacherOptions:
    student: str = "lc"  # "lc" or "nn"
    epochs: int = 1000  # teacher epochs
    lr: float = 0.05  # Adam on the teaching parameters
    student_epochs: int = 50
    l2: float = 1e-3  # the LC student's penalty (as the evaluation's LC)
    init: str = "reset"  # unrolled LC: "reset" to the same init every epoch, or a "fresh" one
    hypergradient: str = "implicit"  # LC: "implicit" or "unrolled"
    solver: str = "woodbury"  # implicit: "woodbury" (exact), "cg" (exact), "neumann" (truncated, for comparison)
    unrolled_lr: float = 0.5  # unrolled: gradient-descent step of the inner training
    similarity: str = "cosine"  # NN student, as the evaluation's NN
    temperature: float = 0.1
    rule: str = "logsumexp"
    prior_weight: float = 0.0  # latent: weight of the mean whitened squared distance to the class prior / latent_dim
    truncation: float | None = None  # latent: keep codes within this many sqrt(latent_dim) of the prior (whitened)
    diversity_weight: float = 0.0  # penalty on the mean cosine similarity between teaching features of one class
    seed: int = 0

    def check(self) -> None:
        if self.student not in ("lc", "nn"):
            raise TeachsetError(f"student must be 'lc' or 'nn', got '{self.student}'")
        if self.hypergradient not in ("implicit", "unrolled") or self.solver not in SOLVERS or self.init not in ("reset", "fresh"):
            raise TeachsetError(f"hypergradient must be implicit|unrolled, solver one of {SOLVERS}, init reset|fresh")
        if self.student == "lc" and self.l2 <= 0:
            raise TeachsetError("the LC teacher needs --l2 > 0 (the inner problem must have a unique optimum)")
        if self.epochs < 1 or self.lr <= 0:
            raise TeachsetError("teacher epochs must be >= 1 and the learning rate > 0")


def diversity_penalty(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between distinct teaching examples of the same class."""
    f = F.normalize(features, dim=1)
    sim = f @ f.T
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    return sim[same].mean() if same.any() else sim.new_zeros(())


class Teacher:
    """Optimises `params` so that render(params) teaches the student the dataset."""

    def __init__(self, params: torch.Tensor, render: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor,
                 extractor: FrozenExtractor, data_features: np.ndarray, data_labels: np.ndarray, options: TeacherOptions,
                 penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None):
        options.check()
        self.options, self.render, self.labels, self.extractor = options, render, labels, extractor
        self.penalty, self.project = penalty, project
        self.params = params.detach().clone().requires_grad_(True)
        self.num_classes = int(max(data_labels.max(), labels.max())) + 1
        self.data = torch.from_numpy(np.ascontiguousarray(data_features, dtype=np.float32))
        self.data_aug = augment(self.data)
        self.data_labels = torch.from_numpy(np.asarray(data_labels, dtype=np.int64))
        self.optimizer = torch.optim.Adam([self.params], lr=options.lr)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.class_sums = F.one_hot(self.data_labels, self.num_classes).float().T @ self.data_aug
        W0, b0 = init_linear(self.data.shape[1], self.num_classes, options.seed)
        self.theta0 = torch.cat([W0, b0[:, None]], dim=1)
        self.theta = self.theta0  # the last optimum: where the next Newton solve starts
        self.epoch = 0

    def _student_init(self) -> torch.Tensor:
        if self.options.init == "reset":
            return self.theta0
        W0, b0 = init_linear(self.data.shape[1], self.num_classes, int(torch.randint(2**31, (1,), generator=self.generator)))
        return torch.cat([W0, b0[:, None]], dim=1)

    def loss(self) -> tuple[torch.Tensor, float, float]:
        """(the scalar to backpropagate, the student's loss on the dataset, its accuracy on the dataset)."""
        o = self.options
        images = self.render(self.params)
        features = self.extractor(images)
        extra = o.diversity_weight * diversity_penalty(features, self.labels) if o.diversity_weight else 0.0
        if self.penalty is not None:
            extra = extra + self.penalty(self.params)
        if o.student == "nn":
            scores = class_scores(self.data, features, self.labels, self.num_classes, similarity=o.similarity,
                                  temperature=o.temperature, rule=o.rule)
            outer = F.cross_entropy(scores, self.data_labels)
            accuracy = (scores.argmax(1) == self.data_labels).float().mean()
            return outer + extra, float(outer.detach()), float(accuracy)
        phi = augment(features.double())
        if o.hypergradient == "unrolled":
            theta = unrolled_theta(phi, self.labels, self._student_init(), o.l2, o.student_epochs, o.unrolled_lr)
            logits = self.data_aug @ theta.T.float()
            outer = F.cross_entropy(logits, self.data_labels)
            return outer + extra, float(outer.detach()), float((logits.argmax(1) == self.data_labels).float().mean())
        with torch.no_grad():
            theta = self.theta = newton(phi.detach(), self.labels, self.theta, o.l2, max_iter=o.student_epochs)
            outer, g, predictions = outer_loss_and_grad(theta.float(), self.data_aug, self.data_labels, self.class_sums)
        surrogate = implicit_surrogate(phi, self.labels, theta, g.double(), o.l2, o.solver)
        return surrogate + extra, float(outer), float((predictions == self.data_labels).float().mean())

    def step(self) -> dict:
        start = time.perf_counter()
        total, outer, accuracy = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.project is not None:
            with torch.no_grad():
                self.params.copy_(self.project(self.params))
        self.epoch += 1
        return {"epoch": self.epoch, "outer_loss": outer, "proxy_accuracy": accuracy, "seconds": time.perf_counter() - start}

    def run(self, curve_path: Path | None = None, progress: bool = True) -> list[dict]:
        """All teacher epochs; one JSONL line per epoch (outer loss and proxy accuracy); a live progress bar."""
        curve = []
        log = open(curve_path, "w") if curve_path else None
        bar = tqdm(range(self.options.epochs), desc=f"teaching ({self.options.student})", unit="epoch", disable=not progress)
        try:
            for _ in bar:
                record = self.step()
                curve.append(record)
                if log:
                    log.write(json.dumps(record) + "\n")
                if self.epoch % 10 == 0 or self.epoch == self.options.epochs:
                    bar.set_postfix(loss=f"{record['outer_loss']:.3f}", acc=f"{record['proxy_accuracy']:.3f}")
        finally:
            bar.close()
            if log:
                log.close()
        return curve

    @torch.no_grad()
    def images(self) -> torch.Tensor:
        return self.render(self.params)


def options_record(options: TeacherOptions) -> dict:
    return asdict(options)


def balanced_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)


def generated_teaching_set(teacher: Teacher, dataset, method: str, params: dict, latents: np.ndarray | None):
    from ..teaching_set import TeachingSet

    pixels = np.clip(np.rint(teacher.images().numpy() * 255), 0, 255).astype(np.uint8)
    return TeachingSet(images=pixels, labels=teacher.labels.numpy().copy(), class_names=list(dataset.class_names),
                       method=method, params=params, seed=teacher.options.seed,
                       dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "spec": dataset.spec},
                       latents=latents)


def snap_to_real(teaching_set, dataset, features: np.ndarray, extractor: FrozenExtractor):
    """Replace each teaching image by its nearest real image of the same class in feature space
    (each real image used once): the paper's people learned better from real images."""
    from ..features import extract
    from ..teaching_set import TeachingSet
    from .base import sq_distances

    taught = extract(extractor, teaching_set.tensor())
    chosen: list[int] = []
    for i, label in enumerate(teaching_set.labels):
        members = np.flatnonzero(dataset.labels == label)
        d = sq_distances(taught[i : i + 1], features[members])[0]
        d[np.isin(members, chosen)] = np.inf
        chosen.append(int(members[np.argmin(d)]))
    params = {**teaching_set.params, "snapped_from": teaching_set.method}
    return TeachingSet.from_selection(dataset, chosen, method=f"{teaching_set.method}-snapped", params=params, seed=teaching_set.seed)

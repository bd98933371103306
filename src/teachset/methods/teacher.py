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
  the same init every epoch (the paper's choice) or drawn fresh (student_init="fresh");
- NN student: the teaching images are the prototypes; plain backpropagation of eq. 4's loss.
Gradients are taken with respect to the teaching parameters only; F and G stay frozen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import defaults
from ..distances import sq_distances
from ..errors import OptionError
from ..features import FrozenExtractor, extract
from ..generators.blocks import diff_augment
from ..hypergrad import SOLVERS, augment, implicit_surrogate, newton, outer_loss_and_grad, unrolled_theta
from ..options import check_fields, option
from ..students import class_scores, init_linear
from ..students.prototype import RULES, SIMILARITIES
from ..teaching_data import TeachingData
from ..teaching_set import TeachingSet


@dataclass
class TeacherOptions:
    """How the teacher optimises; the student's own options default to the evaluation's students."""

    student: str = option("lc+nn", "the proxy students taught: lc (linear, eq. 3), nn (prototypes, eq. 4), or lc+nn (their "
                          "mean loss: a set that cannot win by exploiting one of them)", choices=("lc", "nn", "lc+nn"))
    epochs: int = option(200, "teacher epochs (the paper: 1000)", minimum=1)
    lr: float = option(0.05, "Adam step on the teaching parameters (codes or pixel logits)", above=0)
    student_epochs: int = option(defaults.LC_EPOCHS, "LC: at most this many Newton epochs (or unrolled gradient steps)", minimum=1)
    l2: float = option(defaults.LC_L2, "LC: the student's L2 penalty (as the evaluation's LC)", minimum=0)
    student_init: str = option("reset", "unrolled LC: reset the student to one init every epoch, or draw a fresh one "
                               "(the implicit LC reaches its unique optimum from any init)", choices=("reset", "fresh"))
    hypergradient: str = option("implicit", "LC: differentiate through the student's training implicitly (exact at its "
                                "optimum) or by unrolling its gradient steps", choices=("implicit", "unrolled"))
    solver: str = option("woodbury", "implicit LC: the Hessian solve (woodbury and cg are exact; neumann is truncated)",
                         choices=SOLVERS)
    unrolled_lr: float = option(0.5, "unrolled LC: gradient-descent step of the inner training", above=0)
    similarity: str = option(defaults.NN_SIMILARITY, "NN: similarity between features", choices=SIMILARITIES)
    temperature: float = option(defaults.NN_TEMPERATURE, "NN: softmax temperature of the similarities", above=0)
    rule: str = option(defaults.NN_RULE, "NN: how a class's prototypes combine", choices=RULES)
    prior_weight: float = option(0.0, "latent: weight of the codes' whitened squared distance to the class prior", minimum=0)
    truncation: float | None = option(None, "latent: keep codes within this radius of the class prior (whitened, per "
                                      "sqrt of the latent size)", above=0)
    diversity_weight: float = option(0.0, "penalty on the similarity between one class's teaching examples", minimum=0)
    anchor_weight: float = option(10.0, "latent: weight of the codes' whitened squared distance to where they started "
                                  "(a trust region around realistic codes)", minimum=0)
    extractors: tuple[str, ...] = option(defaults.TEACHER_EXTRACTORS, "also teach the students in these extractors' feature spaces (the loss is "
                                         "averaged over them), so that the set cannot win by exploiting one network")
    views: int = option(2, "differentiable random shifts and brightness changes of the teaching images, this many per "
                        "epoch, that the students must also learn from (0: the images as they are)", minimum=0)

    def __post_init__(self):
        check_fields(self)
        if "lc" in self.student.split("+") and self.l2 <= 0:
            raise OptionError("l2", "the LC teacher needs {option} above 0: the student's problem must have one optimum")


def diversity_penalty(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between distinct teaching examples of the same class."""
    f = F.normalize(features, dim=1)
    sim = f @ f.T
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    return sim[same].mean() if same.any() else sim.new_zeros(())


class _Space:
    """One feature space the students are taught in: a frozen network, the dataset's features in it,
    and the LC student's last optimum there (where the next Newton solve starts)."""

    def __init__(self, network: FrozenExtractor, features: np.ndarray, labels: torch.Tensor, num_classes: int, seed: int):
        self.network = network
        self.data = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.data_aug = augment(self.data)
        self.class_sums = F.one_hot(labels, num_classes).float().T @ self.data_aug
        W0, b0 = init_linear(self.data.shape[1], num_classes, seed)
        self.theta0 = self.theta = torch.cat([W0, b0[:, None]], dim=1)


class Teacher:
    """Optimises teaching parameters so that render(params) teaches the students a dataset.

    Options and the problem in the constructor: the renderer, the teaching labels, and one frozen
    extractor or several (the students are then taught in each of their feature spaces, and the loss
    averaged). `fit(params, data_features, data_labels)` runs the teacher epochs from `params` (one
    feature array per extractor) and returns self. Learned: `params_` (the final parameters), `curve_`
    (outer loss and proxy accuracy per epoch), `theta_` (the LC student's last optimum, first space)."""

    def __init__(self, options: TeacherOptions, render: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor,
                 extractor: FrozenExtractor | list[FrozenExtractor], penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0):
        self.options, self.render, self.labels = options, render, labels
        self.extractors = extractor if isinstance(extractor, list) else [extractor]
        self.penalty, self.project, self.seed = penalty, project, seed

    def reset(self, params: torch.Tensor, data_features: np.ndarray | list[np.ndarray], data_labels: np.ndarray) -> "Teacher":
        """Start again from `params` against a dataset's features (one array per extractor) and labels
        (what `fit` does first; then `step`)."""
        features = data_features if isinstance(data_features, list) else [data_features]
        self.params_ = params.detach().clone().requires_grad_(True)
        self.num_classes_ = int(max(data_labels.max(), self.labels.max())) + 1
        self.data_labels = torch.from_numpy(np.asarray(data_labels, dtype=np.int64))
        self.spaces_ = [_Space(net, f, self.data_labels, self.num_classes_, self.seed) for net, f in zip(self.extractors, features)]
        self.optimizer = torch.optim.Adam([self.params_], lr=self.options.lr)
        self.rng = torch.Generator().manual_seed(self.seed)
        self.epoch_, self.curve_ = 0, []
        return self

    @property
    def theta_(self) -> torch.Tensor:
        return self.spaces_[0].theta

    @property
    def theta0_(self) -> torch.Tensor:
        return self.spaces_[0].theta0

    def _student_init(self, space: _Space) -> torch.Tensor:
        if self.options.student_init == "reset":
            return space.theta0
        W0, b0 = init_linear(space.data.shape[1], self.num_classes_, int(torch.randint(2**31, (1,), generator=self.rng)))
        return torch.cat([W0, b0[:, None]], dim=1)

    def loss(self) -> tuple[torch.Tensor, float, float]:
        """(the scalar to backpropagate, the students' loss on the dataset, their accuracy on the dataset),
        averaged over the students taught, the feature spaces and, with views, augmented copies of the images."""
        o = self.options
        images, labels = self.render(self.params_), self.labels
        if o.views:
            images = torch.cat([images, *(diff_augment(images, self.rng) for _ in range(o.views))])
            labels = labels.repeat(o.views + 1)
        parts, extra = [], 0.0
        for space in self.spaces_:
            features = space.network(images)
            if o.diversity_weight:
                extra = extra + o.diversity_weight * diversity_penalty(features, labels) / len(self.spaces_)
            parts += [self._student_loss(s, space, features, labels) for s in o.student.split("+")]
        if self.penalty is not None:
            extra = extra + self.penalty(self.params_)
        total = sum(p[0] for p in parts) / len(parts)
        return total + extra, sum(p[1] for p in parts) / len(parts), sum(p[2] for p in parts) / len(parts)

    def _student_loss(self, student: str, space: _Space, features: torch.Tensor,
                      labels: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        o = self.options
        if student == "nn":
            scores = class_scores(space.data, features, labels, self.num_classes_, similarity=o.similarity,
                                  temperature=o.temperature, rule=o.rule)
            outer = F.cross_entropy(scores, self.data_labels)
            return outer, float(outer.detach()), float((scores.argmax(1) == self.data_labels).float().mean())
        phi = augment(features.double())
        if o.hypergradient == "unrolled":
            theta = unrolled_theta(phi, labels, self._student_init(space), o.l2, o.student_epochs, o.unrolled_lr)
            logits = space.data_aug @ theta.T.float()
            outer = F.cross_entropy(logits, self.data_labels)
            return outer, float(outer.detach()), float((logits.argmax(1) == self.data_labels).float().mean())
        with torch.no_grad():
            theta = space.theta = newton(phi.detach(), labels, space.theta, o.l2, max_iter=o.student_epochs)
            outer, g, predictions = outer_loss_and_grad(theta.float(), space.data_aug, self.data_labels, space.class_sums)
        surrogate = implicit_surrogate(phi, labels, theta, g.double(), o.l2, o.solver)
        return surrogate, float(outer), float((predictions == self.data_labels).float().mean())

    def step(self) -> dict:
        start = time.perf_counter()
        total, outer, accuracy = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.project is not None:
            with torch.no_grad():
                self.params_.copy_(self.project(self.params_))
        self.epoch_ += 1
        record = {"epoch": self.epoch_, "outer_loss": outer, "proxy_accuracy": accuracy, "seconds": time.perf_counter() - start}
        self.curve_.append(record)
        return record

    def fit(self, params: torch.Tensor, data_features: np.ndarray, data_labels: np.ndarray, progress: bool = False) -> "Teacher":
        """All teacher epochs from `params`, with a live progress bar when asked."""
        self.reset(params, data_features, data_labels)
        bar = tqdm(range(self.options.epochs), desc=f"teaching ({self.options.student})", unit="epoch", disable=not progress)
        for _ in bar:
            record = self.step()
            if self.epoch_ % 10 == 0 or self.epoch_ == self.options.epochs:
                bar.set_postfix(loss=f"{record['outer_loss']:.3f}", acc=f"{record['proxy_accuracy']:.3f}")
        bar.close()
        return self

    @torch.no_grad()
    def images(self) -> torch.Tensor:
        return self.render(self.params_)


def teaching_spaces(options: TeacherOptions, data: TeachingData) -> tuple[list[FrozenExtractor], list[np.ndarray]]:
    """The frozen networks a teacher teaches through and the data's features in each: the data's own
    extractor, then `options.extractors` (at the same input size)."""
    size = data.dataset.image_size
    others = [TeachingData.load(data.dataset, name, defaults.network_input_size(name, size), progress=False)
              for name in options.extractors if name != data.extractor]
    return [data.network, *(o.network for o in others)], [data.features, *(o.features for o in others)]


def balanced_labels(num_classes: int, per_class: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(per_class)


def load_start(path: str | None, data: TeachingData) -> TeachingSet | None:
    """The teaching set a teacher starts from (None: none), checked to be of this dataset."""
    if path is None:
        return None
    start = TeachingSet.load(path)
    if start.dataset.get("fingerprint") != data.dataset.record()["fingerprint"]:
        raise OptionError("init", f"the teaching set {{option}} starts from ('{path}') was made from another dataset; "
                                  "start from a set of this dataset")
    return start


def snap_to_real(teaching_set: TeachingSet, data: TeachingData) -> TeachingSet:
    """Replace each teaching image by its nearest real image of the same class in feature space
    (each real image used once): the paper's people learned better from real images."""
    taught = extract(data.network, teaching_set.tensor())
    chosen: list[int] = []
    for i, label in enumerate(teaching_set.labels):
        members = np.flatnonzero(data.dataset.labels == label)
        d = sq_distances(taught[i : i + 1], data.features[members])[0]
        d[np.isin(members, chosen)] = np.inf
        chosen.append(int(members[np.argmin(d)]))
    params = {**teaching_set.params, "snapped_from": teaching_set.method}
    snapped = TeachingSet.from_selection(data.dataset, chosen, method=f"{teaching_set.method}-snapped", params=params,
                                         seed=teaching_set.seed)
    snapped.curve = teaching_set.curve
    return snapped

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
    anchor_weight: float = option(3.0, "latent: weight of the codes' whitened squared distance to where they started "
                                  "(a trust region around realistic codes)", minimum=0)
    extractors: tuple[str, ...] = option(defaults.TEACHER_EXTRACTORS, "also teach the students in these extractors' feature spaces (the loss is "
                                         "averaged over them), so that the set cannot win by exploiting one network")
    views: int = option(2, "differentiable random shifts and brightness changes of the teaching images, this many per "
                        "epoch, that the students must also learn from (0: the images as they are)", minimum=0)
    proxy: str | None = option(None, "teach against a calibrated proxy (the proxy.json of `teachset study calibrate`): "
                               "its extractor, map, head and temperature replace the student, its options and the extra "
                               "extractors")

    def __post_init__(self):
        check_fields(self)
        if self.proxy:  # the calibrated proxy is the one student taught
            spec = self.proxy_spec()
            self.student, self.extractors = spec.student, ()
            if spec.head != "lc":
                self.similarity, self.temperature, self.rule = spec.similarity, spec.temperature, spec.rule
        if "lc" in self.student.split("+") and self.l2 <= 0:
            raise OptionError("l2", "the LC teacher needs {option} above 0: the student's problem must have one optimum")

    def proxy_spec(self):
        """The calibrated proxy taught against (None: none)."""
        from ..proxy import load_proxy

        return load_proxy(self.proxy) if self.proxy else None

    def params(self) -> dict:
        """A method's recorded parameters, with the calibrated proxy (its file, hash, fit and scores) where there is one."""
        found = super().params()
        return {**found, "proxy": self.proxy_spec().record()} if self.proxy else found


def diversity_penalty(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity between distinct teaching examples of the same class."""
    f = F.normalize(features, dim=1)
    sim = f @ f.T
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(len(labels), dtype=torch.bool)
    return sim[same].mean() if same.any() else sim.new_zeros(())


class _Space:
    """One feature space the students are taught in: a frozen network and the dataset's features in it."""

    def __init__(self, network: FrozenExtractor, features: np.ndarray, labels: torch.Tensor, num_classes: int):
        self.network = network
        self.data = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.data_aug = augment(self.data)
        self.class_sums = F.one_hot(labels, num_classes).float().T @ self.data_aug


class _Group:
    """One teaching set being taught (one seed): its random draws, its LC students' last optima (where
    each next Newton solve starts, one per feature space), its curve."""

    def __init__(self, seed: int, spaces: list[_Space], num_classes: int):
        self.seed, self.rng, self.curve = seed, torch.Generator().manual_seed(seed), []
        self.theta0 = [torch.cat([W, b[:, None]], dim=1) for W, b in
                       (init_linear(space.data.shape[1], num_classes, seed) for space in spaces)]
        self.theta = list(self.theta0)


class Teacher:
    """Optimises teaching parameters so that render(params) teaches the students a dataset.

    Options and the problem in the constructor: the renderer, one set's teaching labels, one frozen
    extractor or several (the students are then taught in each of their feature spaces, and the loss
    averaged), and one seed per teaching set taught at once: the sets are independent (each its own
    seed, students and draws, as if taught one by one), but their images go through the networks in
    one batch. `fit(params, data_features, data_labels)` runs the teacher epochs from `params` (the
    sets' parameters one after the other; one feature array per extractor) and returns self.
    Learned: `params_`, `curves_` (one per set: outer loss and proxy accuracy per epoch; `curve_` the
    first's), `theta_` (the first set's LC student's last optimum, first space)."""

    def __init__(self, options: TeacherOptions, render: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor,
                 extractor: FrozenExtractor | list[FrozenExtractor], penalty: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int | list[int] = 0):
        self.options, self.render, self.labels = options, render, labels
        self.extractors = extractor if isinstance(extractor, list) else [extractor]
        self.penalty, self.project = penalty, project  # penalty: one value per code
        self.seeds = seed if isinstance(seed, list) else [seed]

    def reset(self, params: torch.Tensor, data_features: np.ndarray | list[np.ndarray], data_labels: np.ndarray) -> "Teacher":
        """Start again from `params` against a dataset's features (one array per extractor) and labels
        (what `fit` does first; then `step`)."""
        features = data_features if isinstance(data_features, list) else [data_features]
        if len(params) != len(self.seeds) * len(self.labels):
            raise ValueError(f"{len(params)} parameters for {len(self.seeds)} set(s) of {len(self.labels)} images")
        self.params_ = params.detach().clone().requires_grad_(True)
        self.num_classes_ = int(max(data_labels.max(), self.labels.max())) + 1
        self.data_labels = torch.from_numpy(np.asarray(data_labels, dtype=np.int64))
        self.spaces_ = [_Space(net, f, self.data_labels, self.num_classes_) for net, f in zip(self.extractors, features)]
        self.groups_ = [_Group(seed, self.spaces_, self.num_classes_) for seed in self.seeds]
        self.optimizer = torch.optim.Adam([self.params_], lr=self.options.lr)  # per coordinate: the sets stay independent
        self.epoch_ = 0
        return self

    @property
    def curves_(self) -> list[list[dict]]:
        return [group.curve for group in self.groups_]

    @property
    def curve_(self) -> list[dict]:
        return self.groups_[0].curve

    @property
    def theta_(self) -> torch.Tensor:
        return self.groups_[0].theta[0]

    @property
    def theta0_(self) -> torch.Tensor:
        return self.groups_[0].theta0[0]

    def loss(self) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """(the scalar to backpropagate: the sum over sets of each set's loss, and per set its students'
        loss and accuracy on the dataset). A set's loss averages its students, the feature spaces and,
        with views, augmented copies of its images."""
        o, b = self.options, len(self.labels)
        rendered, labels = self.render(self.params_), self.labels.repeat(o.views + 1)
        batches = []
        for k, group in enumerate(self.groups_):
            images = rendered[k * b : (k + 1) * b]
            batches.append(torch.cat([images, *(diff_augment(images, group.rng) for _ in range(o.views))]) if o.views else images)
        per_set = len(labels)
        parts = [[] for _ in self.groups_]
        extra = torch.zeros(())
        for s, space in enumerate(self.spaces_):
            features = space.network(torch.cat(batches))
            for k, group in enumerate(self.groups_):
                mine = features[k * per_set : (k + 1) * per_set]
                if o.diversity_weight:
                    extra = extra + o.diversity_weight * diversity_penalty(mine, labels) / len(self.spaces_)
                parts[k] += [self._student_loss(student, space, s, group, mine, labels) for student in o.student.split("+")]
        if self.penalty is not None:  # each set's mean over its codes
            extra = extra + self.penalty(self.params_).view(len(self.groups_), b).mean(1).sum()
        total = sum(sum(p[0] for p in group) / len(group) for group in parts)
        return total + extra, [(sum(p[1] for p in g) / len(g), sum(p[2] for p in g) / len(g)) for g in parts]

    def _student_loss(self, student: str, space: _Space, index: int, group: _Group, features: torch.Tensor,
                      labels: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        o = self.options
        if student == "nn":
            scores = class_scores(space.data, features, labels, self.num_classes_, similarity=o.similarity,
                                  temperature=o.temperature, rule=o.rule)
            outer = F.cross_entropy(scores, self.data_labels)
            return outer, float(outer.detach()), float((scores.argmax(1) == self.data_labels).float().mean())
        phi = augment(features.double())
        if o.hypergradient == "unrolled":
            if o.student_init == "reset":
                init = group.theta0[index]
            else:  # a fresh init every epoch, drawn from the set's own seed
                W0, b0 = init_linear(space.data.shape[1], self.num_classes_, int(torch.randint(2**31, (1,), generator=group.rng)))
                init = torch.cat([W0, b0[:, None]], dim=1)
            theta = unrolled_theta(phi, labels, init, o.l2, o.student_epochs, o.unrolled_lr)
            logits = space.data_aug @ theta.T.float()
            outer = F.cross_entropy(logits, self.data_labels)
            return outer, float(outer.detach()), float((logits.argmax(1) == self.data_labels).float().mean())
        with torch.no_grad():
            theta = group.theta[index] = newton(phi.detach(), labels, group.theta[index], o.l2, max_iter=o.student_epochs)
            outer, g, predictions = outer_loss_and_grad(theta.float(), space.data_aug, self.data_labels, space.class_sums)
        surrogate = implicit_surrogate(phi, labels, theta, g.double(), o.l2, o.solver)
        return surrogate, float(outer), float((predictions == self.data_labels).float().mean())

    def step(self) -> dict:
        """One teacher epoch of every set; returns the first set's record."""
        start = time.perf_counter()
        total, scores = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.project is not None:
            with torch.no_grad():
                self.params_.copy_(self.project(self.params_))
        self.epoch_ += 1
        seconds = (time.perf_counter() - start) / len(self.groups_)
        for group, (outer, accuracy) in zip(self.groups_, scores):
            group.curve.append({"epoch": self.epoch_, "outer_loss": outer, "proxy_accuracy": accuracy, "seconds": seconds})
        return self.groups_[0].curve[-1]

    def fit(self, params: torch.Tensor, data_features: np.ndarray, data_labels: np.ndarray, progress: bool = False) -> "Teacher":
        """All teacher epochs from `params`, with a live progress bar when asked."""
        self.reset(params, data_features, data_labels)
        sets = f", {len(self.seeds)} sets" if len(self.seeds) > 1 else ""
        bar = tqdm(range(self.options.epochs), desc=f"teaching ({self.options.student}{sets})", unit="epoch", disable=not progress)
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
    extractor, then `options.extractors` (at the same input size); with a calibrated proxy, its own
    extractor and map alone."""
    if options.proxy:
        return options.proxy_spec().teacher_space(data)
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

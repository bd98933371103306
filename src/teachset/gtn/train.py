"""GTN meta-training: fresh learners, unrolled inner SGD on a teacher's batches, meta-loss on real data.

One outer step (Such et al. 2020, Fig. 1a): initialise a learner at random; train it for
`inner_steps` SGD-with-momentum steps on the teacher's batches, keeping the graph
(`create_graph=True`); score it on a batch of real training images (the meta-loss); backprop
through the unrolled training into the generator, the curriculum noise, and the inner learning
rate and momentum; one Adam step. With `checkpointing`, each inner step is recomputed during the
backward pass instead of stored (memory ~ one step instead of all of them, ~1.3-1.5x the time).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .learners import LearnerSpec, forward, init_params, search_space
from .teachers import Generator, GTNTeacher, InnerHyper, PixelTeacher, RealTeacher

SOURCES = ("gtn", "real", "distill")


@dataclass
class GTNOptions:
    """Everything that defines a GTN (or control) meta-training run; defaults in one visible place."""

    source: str = "gtn"                # gtn | real (control: real samples) | distill (dataset distillation)
    inner_steps: int = 32              # SGD steps of every learner
    batch_size: int = 64               # images per inner step (the paper: 128)
    outer_steps: int = 200             # meta-training steps (budget; `minutes` may end it sooner)
    minutes: float | None = None
    learner: str = "mlp"               # mlp | conv (conv is ~4x slower on a CPU)
    learner_widths: tuple[int, ...] = (128,)
    sample_architectures: bool = False  # each outer step's learner drawn from the search space (for the NAS proxy)
    weight_norm: bool = True
    curriculum: str = "learned"        # learned | shuffled | none
    labels: str = "conditional"        # conditional | soft
    generator: str = "mlp"             # mlp | conv (conv is the paper's; ~3x slower on a CPU)
    generator_width: int = 32
    noise_dim: int = 32
    gan_weight: float = 0.0            # > 0: add a GAN realism loss to the meta-loss
    gan_warmup: int = 0                # GAN-only generator steps before meta-training (needs gan_weight > 0)
    inner_lr: float = 0.05             # initial inner learning rate (learned)
    inner_momentum: float = 0.5        # initial inner momentum (learned)
    outer_lr: float = 1e-3             # Adam on the generator and curriculum
    outer_schedule: str = "cosine"     # cosine (every outer learning rate decays to 0 over outer_steps) | constant
    hyper_lr: float = 1e-2             # Adam on log lr and momentum logit
    pixel_lr: float = 1e-2             # Adam on distilled pixels
    meta_batch: int = 256              # real images per meta-loss
    grad_clip: float = 5.0
    checkpointing: bool = False
    eval_every: int = 50               # test few-step accuracy every this many outer steps (0: never)
    eval_learners: int = 4
    seed: int = 0

    def __post_init__(self):
        self.learner_widths = tuple(self.learner_widths)
        assert self.source in SOURCES and self.learner in ("conv", "mlp") and self.generator in ("conv", "mlp")
        assert self.curriculum in ("learned", "shuffled", "none") and self.labels in ("conditional", "soft")
        assert self.outer_schedule in ("cosine", "constant"), self.outer_schedule

    @property
    def learner_spec(self) -> LearnerSpec:
        return LearnerSpec(self.learner, self.learner_widths, weight_norm=self.weight_norm)

    def to_json(self) -> dict:
        return asdict(self)


def build_teacher(options: GTNOptions, shape: tuple[int, int, int], num_classes: int,
                  train_images: torch.Tensor | None = None, train_labels: torch.Tensor | None = None):
    """The teacher of `options.source`, its modules initialised from options.seed (global RNG untouched)."""
    channels, size, _ = shape
    init = torch.Generator().manual_seed(options.seed)
    hyper = InnerHyper(options.inner_lr, options.inner_momentum)
    if options.source == "real":
        return RealTeacher(train_images, train_labels, options.batch_size, hyper)
    if options.source == "distill":
        return PixelTeacher(options.inner_steps, options.batch_size, num_classes, channels, size, hyper, init)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        generator = Generator(options.noise_dim, num_classes, channels, size, options.generator,
                              options.generator_width, soft_labels=options.labels == "soft")
    return GTNTeacher(generator, options.inner_steps, options.batch_size, options.noise_dim, options.curriculum, hyper, init)


def inner_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with class indices, or with a label distribution (soft labels)."""
    if target.dtype == torch.long:
        return F.cross_entropy(logits, target)
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()


def _inner_step(spec, teacher, t, key, lr, momentum, n, *tensors):
    params, velocity = list(tensors[:n]), list(tensors[n:])
    with torch.enable_grad():
        x, target = teacher.make(t, key)
        loss = inner_loss(forward(spec, params, x), target)
        grads = torch.autograd.grad(loss, params, create_graph=True)
    velocity = [momentum * v + g for v, g in zip(velocity, grads)]
    return (*[p - lr * v for p, v in zip(params, velocity)], *velocity)


def train_learner(spec: LearnerSpec, params: list[torch.Tensor], teacher, steps: int, rng: torch.Generator,
                  differentiable: bool = False, checkpointing: bool = False) -> list[torch.Tensor]:
    """`steps` SGD-with-momentum steps on the teacher's batches. differentiable: the result stays a
    function of the teacher's parameters (for the meta-gradient); otherwise plain detached training."""
    lr, momentum = teacher.hyper()
    velocity = [torch.zeros_like(p) for p in params]
    n = len(params)
    for t in teacher.order(steps, rng):
        key = teacher.draw(t, rng)
        if differentiable:
            args = (spec, teacher, t, key, lr, momentum, n, *params, *velocity)
            out = checkpoint(_inner_step, *args, use_reentrant=False) if checkpointing else _inner_step(*args)
            params, velocity = list(out[:n]), list(out[n:])
            continue
        with torch.no_grad():
            x, target = teacher.make(t, key)
        loss = inner_loss(forward(spec, params, x), target)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            velocity = [momentum * v + g for v, g in zip(velocity, grads)]
            params = [(p - lr * v).requires_grad_() for p, v in zip(params, velocity)]
    return params


def predict(spec: LearnerSpec, params, images: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([F.softmax(forward(spec, params, images[i : i + chunk]), 1) for i in range(0, len(images), chunk)])


def few_step_accuracy(teacher, spec: LearnerSpec, steps: int, images: torch.Tensor, labels: torch.Tensor,
                      seeds, num_classes: int) -> dict:
    """Fresh learners (one per seed) trained `steps` steps on the teacher, scored on (images, labels):
    each learner's accuracy, their mean and sd, and the accuracy of their ensemble (mean probabilities)."""
    accs, probs = [], 0
    for seed in seeds:
        rng = torch.Generator().manual_seed(int(seed))
        params = init_params(spec, images.shape[1], images.shape[-1], num_classes, rng)
        p = predict(spec, train_learner(spec, params, teacher, steps, rng), images)
        accs.append(float((p.argmax(1) == labels).float().mean()))
        probs = probs + p
    ensemble = float((probs.argmax(1) == labels).float().mean())
    return {"accuracies": accs, "mean": float(np.mean(accs)), "sd": float(np.std(accs)), "ensemble": ensemble}


@dataclass
class GTNTrainer:
    """Meta-trains one teacher. `fit` runs the outer loop; learned state: `teacher_`, `curve_`."""

    options: GTNOptions
    train_images: torch.Tensor          # float (N, C, S, S) in [0, 1]: the meta-loss data
    train_labels: torch.Tensor          # long (N,)
    num_classes: int
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    curve_: list = field(default_factory=list)

    def __post_init__(self):
        o = self.options
        self.spec = o.learner_spec
        self.space = search_space() if o.sample_architectures else None
        self.teacher_ = build_teacher(o, tuple(self.train_images.shape[1:]), self.num_classes, self.train_images, self.train_labels)
        self.rng = torch.Generator().manual_seed(o.seed + 1)
        groups = [{"params": list(self.teacher_.hyper.parameters()), "lr": o.hyper_lr}]
        others = [p for name, p in self.teacher_.named_parameters() if not name.startswith("hyper.")]
        if others:
            groups.append({"params": others, "lr": o.pixel_lr if o.source == "distill" else o.outer_lr})
        self.optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999))
        # With a constant rate, long runs destabilise: the learned inner step grows until some fresh
        # learners diverge (MNIST, 1,500 steps: few-step accuracy 0.87 at step 500, 0.80 at 1,000).
        self.schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=o.outer_steps)
                         if o.outer_schedule == "cosine" else None)
        self.discriminator = None
        if o.gan_weight > 0:
            if o.source != "gtn":
                raise ValueError("the GAN realism loss needs a generator (source 'gtn')")
            from ..generators.blocks import PatchDiscriminator

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(o.seed + 2)
                self.discriminator = PatchDiscriminator(self.train_images.shape[1], width=32, num_classes=self.num_classes)
            self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.step_ = 0
        self.warmup_steps_ = 0
        self.seconds_ = 0.0

    def _gan_losses(self, fresh_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(realism loss for the generator, discriminator loss): one generated batch (a curriculum
        step's, or fresh noise) against real images; the discriminator sees each image's class."""
        from ..generators.blocks import diff_augment

        teacher = self.teacher_
        if fresh_noise:
            fake, _ = teacher.generator(torch.randn(teacher.batch_size, teacher.noise_dim, generator=self.rng), teacher.labels)
        else:
            t = int(torch.randint(self.options.inner_steps, (1,), generator=self.rng))
            fake, _ = teacher.make(t, teacher.draw(t, self.rng))
        index = torch.randint(len(self.train_images), (len(fake),), generator=self.rng)
        real, real_labels = self.train_images[index], self.train_labels[index]
        d, aug = self.discriminator, lambda images: diff_augment(images, self.rng)
        g_loss = F.softplus(-d(aug(fake), teacher.labels)).mean()
        d_loss = F.softplus(d(aug(fake.detach()), teacher.labels)).mean() + F.softplus(-d(aug(real), real_labels)).mean()
        return g_loss, d_loss

    def warm_up(self, progress: bool = False) -> None:
        """`gan_warmup` steps of the generator as a plain conditional GAN (fresh noise, no learners), so
        that meta-training starts from realistic images and the realism loss keeps them so."""
        from tqdm import tqdm

        steps = self.options.gan_warmup - self.warmup_steps_
        if self.discriminator is None or steps <= 0:
            return
        optimizer = torch.optim.Adam(self.teacher_.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for _ in tqdm(range(steps), desc="GAN warm-up", unit="step", disable=not progress):
            g_loss, d_loss = self._gan_losses(fresh_noise=True)
            optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            optimizer.step()
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            self.warmup_steps_ += 1

    def meta_loss(self) -> tuple[torch.Tensor, float, LearnerSpec]:
        """The meta-loss of one fresh learner (differentiable in the teacher) and its few-step accuracy on the meta batch.
        The learner has the options' architecture, or one drawn from the search space (`sample_architectures`)."""
        o = self.options
        x = self.train_images
        spec = self.space[int(torch.randint(len(self.space), (1,), generator=self.rng))] if self.space else self.spec
        params = init_params(spec, x.shape[1], x.shape[-1], self.num_classes, self.rng)
        trained = train_learner(spec, params, self.teacher_, o.inner_steps, self.rng, differentiable=True,
                                checkpointing=o.checkpointing)
        index = torch.randint(len(x), (min(o.meta_batch, len(x)),), generator=self.rng)
        logits = forward(spec, trained, x[index])
        loss = F.cross_entropy(logits, self.train_labels[index])
        return loss, float((logits.argmax(1) == self.train_labels[index]).float().mean()), spec

    def step(self) -> dict:
        start = time.perf_counter()
        loss, accuracy, spec = self.meta_loss()
        total, record = loss, {}
        if self.discriminator is not None:
            g_loss, d_loss = self._gan_losses()
            total = total + self.options.gan_weight * g_loss
            record["gan_g_loss"] = g_loss.item()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.options.grad_clip))
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()
        if self.discriminator is not None:
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            record["gan_d_loss"] = d_loss.item()
        self.step_ += 1
        seconds = time.perf_counter() - start
        self.seconds_ += seconds
        lr, momentum = (v.item() for v in self.teacher_.hyper())
        record = {"step": self.step_, "learner": spec.describe(), "meta_loss": loss.item(), "few_step_train_accuracy": accuracy,
                  "inner_lr": lr, "inner_momentum": momentum, "grad_norm": grad_norm,
                  "seconds": seconds, **record}
        if self.options.eval_every and self.test_images is not None and self.step_ % self.options.eval_every == 0:
            record["few_step_test_accuracy"] = self.evaluate(self.options.eval_learners)["mean"]
        self.curve_.append(record)
        return record

    def evaluate(self, learners: int, steps: int | None = None, seed: int = 10_000, spec: LearnerSpec | None = None) -> dict:
        """Few-step accuracy on the test images of `learners` fresh learners (seeds seed, seed+1, ...)."""
        return few_step_accuracy(self.teacher_, spec or self.spec, steps or self.options.inner_steps, self.test_images,
                                 self.test_labels, range(seed, seed + learners), self.num_classes)

    def fit(self, progress: bool = False, curve_path: str | Path | None = None, on_step=None) -> "GTNTrainer":
        """The GAN warm-up (if any), then outer steps until `outer_steps` or `minutes` runs out (the warm-up
        counts against `minutes`); append each record to curve_path (JSONL)."""
        from tqdm import tqdm

        o = self.options
        deadline = None if o.minutes is None else time.perf_counter() + 60 * o.minutes
        self.warm_up(progress)
        bar = tqdm(total=o.outer_steps, initial=self.step_, desc=f"meta-training ({o.source})", unit="step", disable=not progress)
        curve = open(curve_path, "a") if curve_path else None
        try:
            while self.step_ < o.outer_steps and (deadline is None or time.perf_counter() < deadline):
                record = self.step()
                if curve:
                    curve.write(json.dumps(record) + "\n")
                    curve.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{record['meta_loss']:.3f}", acc=f"{record['few_step_train_accuracy']:.2f}")
                if on_step:
                    on_step(self, record)
        finally:
            bar.close()
            if curve:
                curve.close()
        return self

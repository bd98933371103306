"""GTN meta-training: fresh learners, unrolled inner SGD on a teacher's batches, meta-loss on real data.

One outer step (Such et al. 2020, Fig. 1a): initialise a learner at random; train it for
`inner_steps` SGD-with-momentum steps on the teacher's batches, keeping the graph
(`create_graph=True`); score it on a batch of real training images (the meta-loss); backprop
through the unrolled training into the generator, the curriculum noise, and the inner learning
rate and momentum; one Adam step. With `checkpointing`, each inner step is recomputed during the
backward pass instead of stored: memory for one inner step instead of all of them, for more time.

Every random draw comes from a generator seeded from `options.seed`; torch's global random state
is neither read nor seeded.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..atomic import JsonlLog
from ..errors import TeachsetError
from ..seeded import seeded_init
from .learners import LearnerSpec, forward, init_params, search_space
from .options import SOURCES, GTNOptions, check_data
from .teachers import Generator, GTNTeacher, InnerHyper, PixelTeacher, RealTeacher

__all__ = ["SOURCES", "GTNOptions", "GTNTrainer", "build_teacher", "check_data", "few_step_accuracy", "train_learner"]


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
    generator = Generator(options.noise_dim, num_classes, channels, size, options.generator,
                          options.generator_width, soft_labels=options.labels == "soft")
    generator.initialise(torch.Generator().manual_seed(options.seed))
    return GTNTeacher(generator, options.inner_steps, options.batch_size, options.noise_dim, options.curriculum, hyper, init)


def build_discriminator(channels: int, num_classes: int, seed: int) -> nn.Module:
    """The GAN realism loss's conditional patch discriminator, initialised from `seed` (global RNG
    untouched): layer by layer, the convolution's weight and bias, then its spectral norm's
    power-iteration vectors u and v, as PyTorch draws them, so that a seed gives the same
    discriminator as teachset versions that seeded torch's global generator."""
    from ..generators.blocks import PatchDiscriminator

    discriminator = PatchDiscriminator(channels, width=32, num_classes=num_classes)
    init = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in discriminator.modules():
            if not isinstance(m, nn.modules.conv._ConvNd):
                continue
            names = [name for name in ("weight_u", "weight_v") if hasattr(m, name)]
            before = [getattr(m, name).clone() for name in names]
            seeded_init(m, init)
            if all(torch.equal(getattr(m, name), b) for name, b in zip(names, before)):  # seeded_init left them as they were
                for name in names:
                    vector = getattr(m, name)
                    vector.copy_(F.normalize(vector.normal_(0, 1, generator=init), dim=0, eps=1e-12))
    return discriminator


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




class GTNTrainer:
    """Meta-trains one teacher: `GTNTrainer(options).fit(train_images, train_labels, test_images, test_labels)`.

    Learned state, set by `fit`: `teacher_` (the teacher), `curve_` (one record per outer step),
    `step_` (outer steps done), `warmup_steps_` (GAN warm-up steps done), `seconds_` (time spent in
    outer steps), `image_shape_` and `num_classes_` (of the data), `optimizer_` (Adam on the
    teacher) and `discriminator_` (the GAN realism loss's, or None)."""

    def __init__(self, options: GTNOptions):
        self.options = options
        self.spec = options.learner_spec
        self.space = search_space() if options.sample_architectures else None

    def _start(self, train_images, train_labels, test_images, test_labels, num_classes: int) -> None:
        o = self.options
        self._train, self._test = (train_images, train_labels), (test_images, test_labels)
        self.image_shape_, self.num_classes_ = tuple(train_images.shape[1:]), num_classes
        self.teacher_ = build_teacher(o, self.image_shape_, num_classes, train_images, train_labels)
        self._rng = torch.Generator().manual_seed(o.seed + 1)
        groups = [{"params": list(self.teacher_.hyper.parameters()), "lr": o.hyper_lr}]
        others = [p for name, p in self.teacher_.named_parameters() if not name.startswith("hyper.")]
        if others:
            groups.append({"params": others, "lr": o.pixel_lr if o.source == "distill" else o.outer_lr})
        self.optimizer_ = torch.optim.Adam(groups, betas=(0.9, 0.999))
        # With a constant rate, long runs destabilise: the learned inner step grows until some fresh learners diverge.
        self._schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer_, T_max=o.outer_steps)
                          if o.outer_schedule == "cosine" else None)
        self.discriminator_ = None
        if o.gan_weight > 0:
            self.discriminator_ = build_discriminator(self.image_shape_[0], num_classes, o.seed + 2)
            self._d_optimizer = torch.optim.Adam(self.discriminator_.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.step_, self.warmup_steps_, self.seconds_, self.curve_ = 0, 0, 0.0, []

    def _gan_losses(self, fresh_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(realism loss for the generator, discriminator loss): one generated batch (a curriculum
        step's, or fresh noise) against real images; the discriminator sees each image's class."""
        from ..generators.blocks import diff_augment

        teacher, rng, (images, labels) = self.teacher_, self._rng, self._train
        if fresh_noise:
            fake, _ = teacher.generator(torch.randn(teacher.batch_size, teacher.noise_dim, generator=rng), teacher.labels)
        else:
            t = int(torch.randint(self.options.inner_steps, (1,), generator=rng))
            fake, _ = teacher.make(t, teacher.draw(t, rng))
        index = torch.randint(len(images), (len(fake),), generator=rng)
        real, real_labels = images[index], labels[index]
        d, aug = self.discriminator_, lambda x: diff_augment(x, rng)
        g_loss = F.softplus(-d(aug(fake), teacher.labels)).mean()
        d_loss = F.softplus(d(aug(fake.detach()), teacher.labels)).mean() + F.softplus(-d(aug(real), real_labels)).mean()
        return g_loss, d_loss

    def _warm_up(self, progress: bool = False) -> None:
        """`gan_warmup` steps of the generator as a plain conditional GAN (fresh noise, no learners), so
        that meta-training starts from realistic images and the realism loss keeps them so."""
        from tqdm import tqdm

        steps = self.options.gan_warmup - self.warmup_steps_
        if self.discriminator_ is None or steps <= 0:
            return
        optimizer = torch.optim.Adam(self.teacher_.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for _ in tqdm(range(steps), desc="GAN warm-up", unit="step", disable=not progress):
            g_loss, d_loss = self._gan_losses(fresh_noise=True)
            optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            optimizer.step()
            self._d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self._d_optimizer.step()
            self.warmup_steps_ += 1

    def _meta_loss(self) -> tuple[torch.Tensor, float, LearnerSpec]:
        """The meta-loss of one fresh learner (differentiable in the teacher) and its few-step accuracy on the meta batch.
        The learner has the options' architecture, or one drawn from the search space (`sample_architectures`)."""
        o, rng, (x, y) = self.options, self._rng, self._train
        spec = self.space[int(torch.randint(len(self.space), (1,), generator=rng))] if self.space else self.spec
        params = init_params(spec, x.shape[1], x.shape[-1], self.num_classes_, rng)
        trained = train_learner(spec, params, self.teacher_, o.inner_steps, rng, differentiable=True,
                                checkpointing=o.checkpointing)
        index = torch.randint(len(x), (min(o.meta_batch, len(x)),), generator=rng)
        logits = forward(spec, trained, x[index])
        loss = F.cross_entropy(logits, y[index])
        return loss, float((logits.argmax(1) == y[index]).float().mean()), spec

    def _step(self) -> dict:
        start = time.perf_counter()
        loss, accuracy, spec = self._meta_loss()
        total, record = loss, {}
        if self.discriminator_ is not None:
            g_loss, d_loss = self._gan_losses()
            total = total + self.options.gan_weight * g_loss
            record["gan_g_loss"] = g_loss.item()
        self.optimizer_.zero_grad(set_to_none=True)
        total.backward()
        params = [p for group in self.optimizer_.param_groups for p in group["params"]]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.options.grad_clip))
        self.optimizer_.step()
        if self._schedule is not None:
            self._schedule.step()
        if self.discriminator_ is not None:
            self._d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self._d_optimizer.step()
            record["gan_d_loss"] = d_loss.item()
        self.step_ += 1
        seconds = time.perf_counter() - start
        self.seconds_ += seconds
        lr, momentum = (v.item() for v in self.teacher_.hyper())
        record = {"step": self.step_, "learner": spec.describe(), "meta_loss": loss.item(), "few_step_train_accuracy": accuracy,
                  "inner_lr": lr, "inner_momentum": momentum, "grad_norm": grad_norm, "seconds": seconds, **record}
        if self.options.eval_every and self._test[0] is not None and self.step_ % self.options.eval_every == 0:
            record["few_step_test_accuracy"] = self.evaluate(self.options.eval_learners)["mean"]
        self.curve_.append(record)
        return record

    def fit(self, train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor | None = None,
            test_labels: torch.Tensor | None = None, *, num_classes: int | None = None, progress: bool = False,
            curve_path: str | Path | None = None, on_step=None) -> "GTNTrainer":
        """Meta-train a fresh teacher on (train_images: float (N, C, S, S) in [0, 1], train_labels: long (N,)):
        the GAN warm-up (if any), then outer steps until `outer_steps` or `minutes` runs out (the warm-up
        counts against `minutes`). The test images, if given, are scored every `eval_every` steps and by
        `evaluate`. Each step's record is appended to curve_path (JSONL), then `on_step(self, record)` runs.
        num_classes defaults to one more than the largest label."""
        from tqdm import tqdm

        o = self.options
        if num_classes is None:
            num_classes = int(max(train_labels.max(), test_labels.max() if test_labels is not None else 0)) + 1
        check_data(o, train_images.shape[-1], num_classes)
        self._start(train_images, train_labels, test_images, test_labels, num_classes)
        deadline = None if o.minutes is None else time.perf_counter() + 60 * o.minutes
        self._warm_up(progress)
        bar = tqdm(total=o.outer_steps, desc=f"meta-training ({o.source})", unit="step", disable=not progress)
        curve = JsonlLog(curve_path) if curve_path else None
        try:
            while self.step_ < o.outer_steps and (deadline is None or time.perf_counter() < deadline):
                record = self._step()
                if curve:
                    curve.write(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['meta_loss']:.3f}", acc=f"{record['few_step_train_accuracy']:.2f}")
                if on_step:
                    on_step(self, record)
        finally:
            bar.close()
            if curve:
                curve.close()
        return self

    def evaluate(self, learners: int, steps: int | None = None, seed: int = 10_000, spec: LearnerSpec | None = None,
                 images: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> dict:
        """Few-step accuracy of `learners` fresh learners (seeds seed, seed+1, ...) trained `steps` (default
        inner_steps) steps on the fitted teacher, on (images, labels), by default the test data given to fit."""
        if not hasattr(self, "teacher_"):
            raise TeachsetError("this GTNTrainer has no teacher yet; call fit first")
        images, labels = (images, labels) if images is not None else self._test
        if images is None:
            raise TeachsetError("evaluate needs test images: give them to fit or to evaluate")
        return few_step_accuracy(self.teacher_, spec or self.spec, steps or self.options.inner_steps, images, labels,
                                 range(seed, seed + learners), self.num_classes_)

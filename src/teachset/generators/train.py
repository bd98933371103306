"""Training a generator, on a CPU or a CUDA GPU.

    trainer = train_generator(dataset, TrainOptions(minutes=30, flip="both"))  # a new run folder in runs/
    generator = load_generator(trainer.checkpoint_)
    resume_generator(trainer.run_dir, dataset, minutes=60)                  # continue it to a new total budget

The default, model="autoencoder": reconstruction (L1 + LPIPS), optionally (adversarial_weight > 0) joined after
adversarial_start of the budget by a hinge adversarial term with differentiable augmentation on reconstructions and
same-class interpolations. That term is off by default: on a CPU budget its patch discriminator stayed at chance, and
the time is better spent on reconstruction. The option model="cgan": a conditional GAN from scratch (hinge loss,
class-conditioned patch discriminator, DiffAugment), adversarial from the first step. With base=<a generator at half
the size>: only a 2x upsampling stage on it trains (upsample.py), with the autoencoder's loss, on the base's train
part. The learning rates fall on a cosine to 0 over the budget by default (it ended lower than a constant rate). The
options, their checks and the untrained models are in recipe.py.

A run folder holds options.json (written first), metrics.jsonl, samples/stepNNNNNN.png (held-out reconstructions, then
prior samples per class), checkpoint/ (the EMA generator with its fitted class prior; atomic) and resume.pt
(everything needed to continue; atomic). Interrupting with Ctrl-C writes both before exiting; `resume_generator`
continues where the run stopped.

The device and the precision are not options of the run: a run trained on a GPU resumes on a CPU and back. All
randomness comes from CPU generators seeded with the run's seed (the weights, the discriminator's power-iteration
vectors, the batches), so a run draws the same batches on either device, and torch's global random state is left as it
was. On a CPU with native bfloat16 (AVX512-BF16 or AMX) the forward passes run under bfloat16 autocast by default,
which is faster there.
"""

from __future__ import annotations

import copy
import io
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import JsonlLog, atomic_write_bytes, write_json
from ..data import ImageDataset
from ..data.splits import Split, split_dataset
from ..errors import TeachsetError
from ..features.lpips import LPIPS
from ..imaging import save_grid
from ..runs import new_run_dir, run_options
from ..signals import stop_on_sigterm
from .base import Generator
from .blocks import PatchDiscriminator, diff_augment
from .checkpoint import save_generator
from .devices import resolve_device, resolve_precision, training_backend
from .recipe import TrainOptions, build_model, check_options


def _flip(x: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """A random horizontal and/or vertical flip of the batch, as `mode` allows (the draws are the same
    whatever the mode, so a run's batches do not depend on it)."""
    horizontal, vertical = (torch.rand(1, generator=generator) < 0.5 for _ in range(2))
    if horizontal and mode in ("horizontal", "both"):
        x = x.flip(-1)
    if vertical and mode in ("vertical", "both"):
        x = x.flip(-2)
    return x


def _same_class_partners(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    partner = torch.arange(len(y))
    for c in y.unique():
        members = torch.nonzero(y == c).flatten()
        partner[members] = members[torch.randperm(len(members), generator=generator)]
    return partner


class GeneratorTrainer:
    """Trains one generator into `run_dir` on the train part of `split` (the images no student is
    scored on may never shape a teaching image). `fit(dataset)` builds the models (or continues from what
    `load_resume` read), trains until the budget is spent and writes the run's artifacts. What it
    learns lives in attributes ending in _: model_, ema_ (the averaged generator the checkpoint
    holds), disc_ and opt_d_ (where a term uses a discriminator), opt_, rng_ (the batches' random
    state), step_, elapsed_ (training seconds), checkpoint_ (the checkpoint folder last written)."""

    STATEFUL = ("model", "ema", "disc", "opt", "opt_d")  # resume.pt's entries (attributes model_, ...), besides rng, step, elapsed

    def __init__(self, options: TrainOptions, run_dir: str | Path, device: str = "auto", precision: str = "auto",
                 split: Split = Split()):
        self.options, self.run_dir, self.split = options, Path(run_dir), split
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dataset_ = None
        self.step_, self.elapsed_, self.checkpoint_ = 0, 0.0, None

    def setup(self, dataset: ImageDataset) -> "GeneratorTrainer":
        """Build the models, optimisers and train/test parts for `dataset`, from the options' seed (fit calls it)."""
        check_options(dataset, self.options)
        o, device = self.options, self.device
        init = torch.Generator().manual_seed(o.seed)
        with torch.random.fork_rng(devices=[]):  # constructing modules draws from the global state: leave it as it was
            self.model_ = build_model(o, dataset, init).to(device)
        held = set(self.model_.base.meta.get("held_out_ids") or []) if o.base else None
        if held:  # an upsampling stage's: its base's held-out images stay held out
            self.held_index_ = np.array([i for i, image_id in enumerate(dataset.ids) if image_id in held], dtype=int)
            self.train_index_ = np.setdiff1d(np.arange(len(dataset)), self.held_index_)
            record = self.model_.base.meta["dataset"].get("split", {})
            self.trained_on_ = dataset.subset(self.train_index_, record).record()
        else:
            parts = split_dataset(dataset, self.split)
            self.train_index_, self.held_index_, self.trained_on_ = parts.train_index, parts.test_index, parts.train.record()
        with torch.random.fork_rng(devices=[]):
            self.disc_ = None
            if o.model == "cgan" or o.adversarial_weight:  # built only where a term uses it
                classes = dataset.num_classes if o.model == "cgan" else 0
                self.disc_ = PatchDiscriminator(dataset.channels, num_classes=classes, generator=init).to(device)
            self._lpips = LPIPS("alexnet").to(device)
        self.ema_ = copy.deepcopy(self.model_).requires_grad_(False)
        trained = [p for p in self.model_.parameters() if p.requires_grad]  # an upsampling stage's base is frozen
        self.opt_ = torch.optim.Adam(trained, lr=o.lr, betas=(0.9, 0.99))
        self.opt_d_ = torch.optim.Adam(self.disc_.parameters(), lr=o.disc_lr, betas=(0.0, 0.99)) if self.disc_ else None
        self.rng_ = torch.Generator().manual_seed(o.seed)
        self.step_, self.elapsed_, self.dataset_ = 0, 0.0, dataset
        self._images = dataset.tensor(self.train_index_).to(device)
        self._labels = torch.from_numpy(dataset.labels[self.train_index_]).to(device)
        if device.type == "cpu":  # oneDNN's convolutions run faster on channels-last tensors
            for module in (self.model_, self.ema_, self.disc_, self._lpips):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
            self._images = self._images.contiguous(memory_format=torch.channels_last)
        return self

    # budget ---------------------------------------------------------------------------------
    def progress(self) -> float:
        o = self.options
        parts = ([self.elapsed_ / (60 * o.minutes)] if o.minutes else []) + ([self.step_ / o.steps] if o.steps else [])
        return max(parts) if parts else 1.0

    def lr_factor(self) -> float:
        """The learning rates' multiplier now: 1 throughout, or a cosine from 1 to 0 over the budget."""
        return 0.5 * (1 + math.cos(math.pi * min(self.progress(), 1.0))) if self.options.lr_schedule == "cosine" else 1.0

    # one step -------------------------------------------------------------------------------
    def autocast(self, enabled: bool = True):
        return torch.autocast(self.device.type, torch.bfloat16, enabled=enabled and self.precision == "bf16")

    def _adversarial(self, real, fake, y=None) -> tuple[torch.Tensor, dict]:
        """One hinge-loss discriminator step; returns the generator's adversarial loss."""
        d_loss = F.relu(1 - self.disc_(diff_augment(real, self.rng_), y)).mean() + \
            F.relu(1 + self.disc_(diff_augment(fake.detach(), self.rng_), y)).mean()
        self.opt_d_.zero_grad(set_to_none=True)
        with self.autocast(enabled=False):  # backward passes run outside autocast
            d_loss.backward()
        self.opt_d_.step()
        g_adv = -self.disc_(diff_augment(fake, self.rng_), y).mean()
        return g_adv, {"d_loss": d_loss.item(), "g_adv": g_adv.item()}

    def _gan_loss(self, x, y) -> tuple[torch.Tensor, dict]:
        z = torch.randn(len(y), self.model_.latent_dim, generator=self.rng_).to(self.device)
        return self._adversarial(x, self.model_.generate(z, y), y)

    def _autoencoder_loss(self, x, y) -> tuple[torch.Tensor, dict]:
        o = self.options
        z = self.model_.encode(x)
        recon = self.model_.generate(z, y).float()
        l1 = (recon - x).abs().mean()
        perceptual = self._lpips(recon, x).mean()
        loss = l1 + o.lpips_weight * perceptual
        logs = {"l1": l1.item(), "lpips": perceptual.item()}
        if o.adversarial_weight and self.progress() >= o.adversarial_start:
            alpha = torch.rand(len(z), 1, generator=self.rng_).to(self.device)
            partners = _same_class_partners(y.cpu(), self.rng_).to(self.device)
            mixed = self.model_.generate(alpha * z + (1 - alpha) * z[partners], y).float()
            g_adv, adv_logs = self._adversarial(x, torch.cat([recon, mixed]))
            loss = loss + o.adversarial_weight * g_adv
            logs |= adv_logs
        return loss, logs

    def train_step(self) -> dict:
        o = self.options
        factor = self.lr_factor()
        for opt, lr in ((self.opt_, o.lr), (self.opt_d_, o.disc_lr)):
            for group in opt.param_groups if opt else []:
                group["lr"] = lr * factor
        batch = torch.randint(len(self._images), (o.batch_size,), generator=self.rng_).to(self.device)
        x, y = self._images[batch], self._labels[batch]
        if o.flip != "none":
            x = _flip(x, o.flip, self.rng_)
        with self.autocast():
            loss, logs = self._gan_loss(x, y) if o.model == "cgan" else self._autoencoder_loss(x, y)
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_.step()
        with torch.no_grad():
            for e, p in zip(self.ema_.parameters(), self.model_.parameters()):
                e.lerp_(p, 1 - o.ema)
        self.step_ += 1
        return logs

    # artifacts ------------------------------------------------------------------------------
    @torch.no_grad()
    def fitted_ema(self) -> Generator:
        """The EMA generator, with the autoencoder's class prior fitted to its training codes."""
        if not hasattr(self.ema_, "fit_prior"):  # the cgan samples noise; an upsampling stage keeps its base's prior
            return self.ema_
        z = torch.cat([self.ema_.encode(self._images[i : i + 256]) for i in range(0, len(self._images), 256)])
        self.ema_.fit_prior(z, self._labels)
        return self.ema_

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    def save_checkpoint(self, command: str = "") -> Path:
        """The checkpoint folder and resume.pt, each written atomically."""
        dataset = self.dataset_
        extra = {"dataset": self.trained_on_, "held_out_ids": [dataset.ids[i] for i in self.held_index_], "step": self.step_,
                 "train_seconds": round(self.elapsed_, 1), "device": self.device_name(), "precision": self.precision,
                 "options": asdict(self.options), "command": command or ""}
        self.checkpoint_ = save_generator(self.fitted_ema(), self.run_dir / "checkpoint", extra)
        state = {name: getattr(self, name + "_").state_dict() for name in self.STATEFUL if getattr(self, name + "_") is not None}
        buffer = io.BytesIO()
        torch.save(state | {"rng": self.rng_.get_state(), "step": self.step_, "elapsed": self.elapsed_}, buffer)
        atomic_write_bytes(self.run_dir / "resume.pt", buffer.getvalue())
        return self.checkpoint_

    def load_resume(self) -> "GeneratorTrainer":
        """Continue from the run folder's resume.pt (after setup)."""
        if self.dataset_ is None:
            raise TeachsetError("set the trainer up for its dataset (setup(dataset)) before loading resume.pt")
        path = self.run_dir / "resume.pt"
        if not path.is_file():
            raise TeachsetError(f"'{self.run_dir}' has no resume.pt to continue from; start a new run instead")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name in self.STATEFUL:
            if getattr(self, name + "_") is not None:  # a discriminator in the file of a run without one is left out
                getattr(self, name + "_").load_state_dict(state[name])
        self.rng_.set_state(state["rng"])
        self.step_, self.elapsed_ = state["step"], state["elapsed"]
        return self

    @torch.no_grad()
    def save_samples(self) -> Path:
        """A grid: held-out images and their reconstructions (autoencoder), then prior samples per class."""
        held = self.dataset_.tensor(self.held_index_[:: max(1, len(self.held_index_) // 8)][:8]).to(self.device)
        model = self.fitted_ema()
        recon = model.generate(model.encode(held)) if self.options.model == "autoencoder" else held[:0]
        y = torch.arange(model.num_classes, device=self.device).repeat_interleave(8)
        samples = model.generate(model.sample_latents(y, torch.Generator().manual_seed(0)), y)
        rows = torch.cat([held, recon, samples]).cpu()
        return save_grid(rows, self.run_dir / "samples" / f"step{self.step_:06d}.png", ncol=8)

    # the loop -------------------------------------------------------------------------------
    def fit(self, dataset: ImageDataset, command: str = "") -> "GeneratorTrainer":
        """Train until the budget is spent, writing metrics, sample grids and checkpoints (`command`:
        what made the run, recorded in the checkpoint); checkpoints come every `checkpoint_every` steps
        and every `checkpoint_minutes`. Ctrl-C or SIGTERM writes the checkpoint and resume.pt before it stops."""
        if self.dataset_ is not dataset:
            self.setup(dataset)
        o = self.options
        since = f" from step {self.step_}" if self.step_ else ""
        # the bar counts steps (with an ETA) under a step budget, else the share of the time budget
        total, unit = (o.steps, "step") if o.steps and not o.minutes else (100, "%")
        position = lambda: self.step_ if unit == "step" else int(100 * min(self.progress(), 1.0))  # noqa: E731
        last_checkpoint = self.elapsed_
        with training_backend(self.device), stop_on_sigterm(), JsonlLog(self.run_dir / "metrics.jsonl") as log, \
                tqdm(total=total, desc=f"training generator{since}", unit=unit, initial=position()) as bar:
            try:
                while self.progress() < 1.0:
                    start = time.perf_counter()
                    logs = self.train_step()
                    self.elapsed_ += time.perf_counter() - start
                    if self.step_ % 25 == 0:
                        logs |= {"step": self.step_, "seconds": round(self.elapsed_, 1), "lr": self.opt_.param_groups[0]["lr"],
                                 "images_per_s": round(self.step_ * o.batch_size / max(self.elapsed_, 1e-9), 1)}
                        log.write(logs)
                        bar.set_postfix({"step": self.step_, **{k: f"{v:.3f}" for k, v in logs.items()
                                                                 if k in ("l1", "lpips", "d_loss", "g_adv")}})
                        bar.update(position() - bar.n)
                    if self.step_ % o.sample_every == 0:
                        self.save_samples()
                    if self.step_ % o.checkpoint_every == 0 or self.elapsed_ - last_checkpoint >= 60 * o.checkpoint_minutes:
                        self.save_checkpoint(command)
                        last_checkpoint = self.elapsed_
                bar.update(total - bar.n)
            except KeyboardInterrupt:
                self.save_checkpoint(command)
                raise
            self.save_samples()
            self.save_checkpoint(command)
        return self


def train_generator(dataset: ImageDataset, options: TrainOptions | None = None, out: str | Path = "runs", *,
                    split: Split = Split(), device: str = "auto", precision: str = "auto", command: str = "") -> GeneratorTrainer:
    """Train a generator on the train part of `split` into a new numbered run folder under `out`
    (options.json written first, after every check has passed); returns the fitted trainer
    (`checkpoint_`: the checkpoint)."""
    options = options or TrainOptions()
    resolve_precision(precision, resolve_device(device))
    check_options(dataset, options)
    split.indices(dataset.labels, dataset.groups, dataset.class_names)  # a split that empties a class fails here
    run_dir = new_run_dir(out, f"generator-{dataset.name}-{dataset.image_size}px",
                          {"dataset": dataset.spec, "split": split.record(), "train": asdict(options), "command": command})
    return GeneratorTrainer(options, run_dir, device, precision, split).fit(dataset, command)


def resume_generator(run_dir: str | Path, dataset: ImageDataset, *, minutes: float | None = None, steps: int | None = None,
                     device: str = "auto", precision: str = "auto", command: str = "") -> GeneratorTrainer:
    """Continue the run in `run_dir` where it stopped, with the options it recorded; `minutes` and
    `steps`, where given, set a new total budget (recorded in options.json, with `command` added to
    the run's command history)."""
    run_dir, record = Path(run_dir), run_options(run_dir, "generator")
    if differ := [k for k in ("image_size", "classes") if dataset.spec.get(k) != record["dataset"].get(k, dataset.spec.get(k))]:
        raise TeachsetError(f"'{run_dir}' was trained on {record['dataset']}, the dataset given differs in {', '.join(differ)}: "
                            "load the dataset the run recorded (teachset generator train --resume does)")
    budget = {k: v for k, v in (("minutes", minutes), ("steps", steps)) if v is not None}
    options = TrainOptions.recorded({**record["train"], **budget})
    split = Split.from_record(record.get("split")) if "split" in record else Split()  # runs before splits: the default
    trainer = GeneratorTrainer(options, run_dir, device, precision, split).setup(dataset).load_resume()
    history = " && ".join(c for c in (record.get("command"), command) if c)  # the whole history that made it
    write_json(run_dir / "options.json", {**record, "train": asdict(options), "command": history})
    return trainer.fit(dataset, history)

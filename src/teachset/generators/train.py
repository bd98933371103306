"""Training a generator, on a CPU or a CUDA GPU. The default, model="autoencoder": reconstruction
(L1 + LPIPS), optionally (adversarial_weight > 0) joined after adversarial_start of the budget by a
hinge adversarial term with differentiable augmentation on reconstructions and same-class
interpolations. That term is off by default: on elpv with 2 CPU cores its patch discriminator
stayed at chance (hinge loss 2.0 for thousands of steps), and 15 more minutes spent on
reconstruction alone scored no worse than with it (samples KID 0.093 against 0.105, class
consistency 0.773 against 0.766, both from the same checkpoint, a code vector of 512). The option model="cgan":
a conditional GAN from scratch (hinge loss, class-conditioned patch discriminator, DiffAugment),
adversarial from the first step. The learning rates fall on a cosine to 0 over the budget by default:
on elpv in 30 CPU minutes (with a code vector of 128) this ended at a lower loss and KID than a
constant rate (samples KID 0.058 against 0.068, 10,456 and 10,171 steps) with class consistency
within its run-to-run spread (0.752 against 0.771).

A run folder holds options.json (written first), metrics.jsonl, samples/stepNNNNNN.png (held-out
reconstructions, then prior samples per class), checkpoint/ (the EMA generator with its fitted
class prior; atomic) and resume.pt (everything needed to continue; atomic). Interrupting with
Ctrl-C writes both before exiting; `resume=True` continues where the run stopped.

The device and the precision are not options of the run: a run trained on a GPU resumes on a CPU
and back. All randomness comes from one CPU generator, so a run draws the same batches on either
device. On a CPU with native bfloat16 (AVX512-BF16 or AMX) the forward passes run under bfloat16
autocast by default: on a 2-core Xeon with AMX, 1.6x the images/s of float32 in both phases.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import ImageDataset
from ..data.splits import stratified_holdout
from ..errors import TeachsetError
from ..features.lpips import LPIPS
from ..imaging import save_grid
from .autoencoder import Autoencoder, check_code_grid
from .blocks import PatchDiscriminator, diff_augment
from .cgan import ConditionalGAN
from .base import save_generator

MIN_IMAGES_PER_CLASS = 10


@dataclass
class TrainOptions:
    model: str = "autoencoder"  # or "cgan"
    latent_dim: int = 256
    code_grid: int = 8  # autoencoder: the code is latent_dim / G^2 channels at G x G; 0 = a vector (a linear layer at 4x4)
    prior_bandwidth: float = 0.15  # autoencoder: the sampling noise, in the class's standard deviations
    width: int = 16
    batch_size: int = 32
    lr: float = 1e-3  # 2e-3 scored worse on elpv in 30 CPU minutes (samples KID 0.072 against 0.058, with more steps)
    lr_schedule: str = "cosine"  # or "constant"; both optimisers, over the budget's progress
    minutes: float | None = 30.0
    steps: int | None = None
    lpips_weight: float = 1.0
    adversarial_weight: float = 0.0  # autoencoder: 0 = reconstruction only (see above); 0.05 was the earlier default
    adversarial_start: float = 0.4  # fraction of the budget spent on reconstruction alone, when adversarial_weight > 0
    disc_lr: float = 2e-4
    ema: float = 0.999
    flip: bool = False  # random horizontal and vertical flips (only where they keep the class)
    holdout: float = 0.2
    seed: int = 0
    sample_every: int = 500
    checkpoint_every: int = 1000

    @classmethod
    def recorded(cls, options: dict) -> "TrainOptions":
        """The options a run recorded (options.json, a checkpoint's meta), with what runs from before an
        option existed had instead of today's default; keys this version does not know are left out."""
        legacy = {"code_grid": 0, "prior_bandwidth": 0.3}
        return cls(**{**legacy, **{k: v for k, v in options.items() if k in cls.__dataclass_fields__}})


def _flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if torch.rand(1, generator=generator) < 0.5:
        x = x.flip(-1)
    if torch.rand(1, generator=generator) < 0.5:
        x = x.flip(-2)
    return x


def _same_class_partners(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    partner = torch.arange(len(y))
    for c in y.unique():
        members = torch.nonzero(y == c).flatten()
        partner[members] = members[torch.randperm(len(members), generator=generator)]
    return partner


def check_trainable(dataset: ImageDataset) -> None:
    if dataset.image_size & (dataset.image_size - 1) or dataset.image_size < 32:
        raise TeachsetError(f"the generator trains at power-of-two sizes of 32 px or more (32, 64, 128); use --size 64, not {dataset.image_size}")
    small = {k: v for k, v in dataset.class_counts().items() if v < MIN_IMAGES_PER_CLASS}
    if small:
        raise TeachsetError(f"class(es) {small} have fewer than {MIN_IMAGES_PER_CLASS} images: too few to train a generator on; add images or use a selection method")


def check_options(dataset: ImageDataset, options: TrainOptions) -> None:
    """Everything about a run that can be wrong before it starts (checked before its folder is made)."""
    check_trainable(dataset)
    if options.model not in ("autoencoder", "cgan"):
        raise TeachsetError(f"unknown generator model '{options.model}'; choose autoencoder or cgan")
    if options.lr_schedule not in ("cosine", "constant"):
        raise TeachsetError(f"unknown learning-rate schedule '{options.lr_schedule}'; choose cosine or constant")
    if options.model == "autoencoder":
        check_code_grid(dataset.image_size, options.latent_dim, options.code_grid)
        if options.prior_bandwidth < 0:
            raise TeachsetError(f"the prior bandwidth must be 0 or more (0: samples are reconstructions of training images), not {options.prior_bandwidth}")


def resolve_device(name: str = "auto") -> torch.device:
    """"auto": the GPU where CUDA has one, else the CPU; "cpu", "cuda", "cuda:N" as asked, if present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TeachsetError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise TeachsetError(f"device '{name}' is not available here (CUDA GPUs: {torch.cuda.device_count()}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise TeachsetError(f"device '{name}' is not supported; use auto, cpu, cuda or cuda:N")
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (emulated bfloat16 is slower than float32)."""
    return any(getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve_precision(name: str, device: torch.device) -> str:
    """"auto": bf16 (autocast) on a CPU with native bfloat16, else fp32 (with TF32 matmuls on a GPU)."""
    if name == "auto":
        return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fp32"
    if name not in ("fp32", "bf16"):
        raise TeachsetError(f"unknown precision '{name}'; use auto, fp32 or bf16")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TeachsetError("this GPU has no bfloat16; use --precision fp32")
    return name


class GeneratorTrainer:
    STATEFUL = ("model", "ema", "disc", "opt", "opt_d")  # what resume.pt holds, besides the RNG and the budget spent

    def __init__(self, dataset: ImageDataset, options: TrainOptions, run_dir: Path, device: str = "cpu",
                 precision: str = "auto"):
        check_options(dataset, options)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
            torch.backends.cuda.matmul.allow_tf32 = True
        self.dataset, self.options, self.run_dir = dataset, options, Path(run_dir)
        self.train_index, self.held_index = stratified_holdout(dataset.labels, options.holdout, options.seed)
        torch.manual_seed(options.seed)
        if options.model == "autoencoder":
            self.model = Autoencoder(dataset.image_size, dataset.channels, options.latent_dim, options.width, num_classes=dataset.num_classes,
                                     class_names=dataset.class_names, prior_bandwidth=options.prior_bandwidth, code_grid=options.code_grid)
        else:
            self.model = ConditionalGAN(dataset.image_size, dataset.channels, options.latent_dim, options.width,
                                        num_classes=dataset.num_classes, class_names=dataset.class_names)
        self.model.to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=options.lr, betas=(0.9, 0.99))
        self.disc = self.opt_d = None  # built only where a term uses it
        if options.model == "cgan" or options.adversarial_weight:
            self.disc = PatchDiscriminator(dataset.channels, num_classes=dataset.num_classes if options.model == "cgan" else 0).to(self.device)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=options.disc_lr, betas=(0.0, 0.99))
        self.lpips = LPIPS("alexnet").to(self.device)
        self.rng = torch.Generator().manual_seed(options.seed)
        self.step, self.elapsed = 0, 0.0
        self.images = dataset.tensor(self.train_index).to(self.device)
        if self.device.type == "cpu":  # oneDNN's convolutions run ~20% faster on channels-last tensors here
            for module in (self.model, self.ema, self.disc, self.lpips):
                if module is not None:
                    module.to(memory_format=torch.channels_last)
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.labels = torch.from_numpy(dataset.labels[self.train_index]).to(self.device)

    # budget ---------------------------------------------------------------------------------
    def progress(self) -> float:
        o = self.options
        parts = ([self.elapsed / (60 * o.minutes)] if o.minutes else []) + ([self.step / o.steps] if o.steps else [])
        return max(parts) if parts else 1.0

    def lr_factor(self) -> float:
        """The learning rates' multiplier now: 1 throughout, or a cosine from 1 to 0 over the budget."""
        return 0.5 * (1 + math.cos(math.pi * min(self.progress(), 1.0))) if self.options.lr_schedule == "cosine" else 1.0

    # one step -------------------------------------------------------------------------------
    def autocast(self, enabled: bool = True):
        return torch.autocast(self.device.type, torch.bfloat16, enabled=enabled and self.precision == "bf16")

    def _adversarial(self, real, fake, y=None) -> tuple[torch.Tensor, dict]:
        """One hinge-loss discriminator step; returns the generator's adversarial loss."""
        d_loss = F.relu(1 - self.disc(diff_augment(real, self.rng), y)).mean() + \
            F.relu(1 + self.disc(diff_augment(fake.detach(), self.rng), y)).mean()
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast(enabled=False):  # backward passes run outside autocast
            d_loss.backward()
        self.opt_d.step()
        g_adv = -self.disc(diff_augment(fake, self.rng), y).mean()
        return g_adv, {"d_loss": d_loss.item(), "g_adv": g_adv.item()}

    def _gan_loss(self, x, y) -> tuple[torch.Tensor, dict]:
        z = torch.randn(len(y), self.model.latent_dim, generator=self.rng).to(self.device)
        return self._adversarial(x, self.model.generate(z, y), y)

    def train_step(self) -> dict:
        o = self.options
        factor = self.lr_factor()
        for opt, lr in ((self.opt, o.lr), (self.opt_d, o.disc_lr)):
            for group in opt.param_groups if opt else []:
                group["lr"] = lr * factor
        batch = torch.randint(len(self.images), (o.batch_size,), generator=self.rng).to(self.device)
        x, y = self.images[batch], self.labels[batch]
        if o.flip:
            x = _flip(x, self.rng)
        with self.autocast():
            loss, logs = self._gan_loss(x, y) if o.model == "cgan" else self._autoencoder_loss(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1 - o.ema)
        self.step += 1
        return logs

    def _autoencoder_loss(self, x, y) -> tuple[torch.Tensor, dict]:
        o = self.options
        z = self.model.encode(x)
        recon = self.model.generate(z).float()
        l1 = (recon - x).abs().mean()
        perceptual = self.lpips(recon, x).mean()
        loss = l1 + o.lpips_weight * perceptual
        logs = {"l1": l1.item(), "lpips": perceptual.item()}
        if o.adversarial_weight and self.progress() >= o.adversarial_start:
            alpha = torch.rand(len(z), 1, generator=self.rng).to(self.device)
            partners = _same_class_partners(y.cpu(), self.rng).to(self.device)
            mixed = self.model.generate(alpha * z + (1 - alpha) * z[partners]).float()
            g_adv, adv_logs = self._adversarial(x, torch.cat([recon, mixed]))
            loss = loss + o.adversarial_weight * g_adv
            logs |= adv_logs
        return loss, logs

    # artifacts ------------------------------------------------------------------------------
    @torch.no_grad()
    def fitted_ema(self):
        """The EMA generator, with the autoencoder's class prior fitted to its training codes."""
        if self.options.model == "cgan":
            return self.ema
        z = torch.cat([self.ema.encode(self.images[i : i + 256]) for i in range(0, len(self.images), 256)])
        self.ema.fit_prior(z, self.labels)
        return self.ema

    def save_checkpoint(self, command: str | None = None) -> Path:
        model = self.fitted_ema()
        extra = {"dataset": {"name": self.dataset.name, "fingerprint": self.dataset.fingerprint, "spec": self.dataset.spec},
                 "held_out_ids": [self.dataset.ids[i] for i in self.held_index], "step": self.step,
                 "train_seconds": round(self.elapsed, 1), "device": self.device_name(), "precision": self.precision,
                 "options": asdict(self.options),
                 "command": command or ""}
        save_generator(model, self.run_dir / "checkpoint", extra)
        state = {name: getattr(self, name).state_dict() for name in self.STATEFUL if getattr(self, name) is not None}
        state |= {"rng": self.rng.get_state(), "step": self.step, "elapsed": self.elapsed}
        tmp = self.run_dir / ".resume.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.run_dir / "resume.pt")
        return self.run_dir / "checkpoint"

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    def load_resume(self) -> None:
        path = self.run_dir / "resume.pt"
        if not path.is_file():
            raise TeachsetError(f"'{self.run_dir}' has no resume.pt to continue from; start a new run instead")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name in self.STATEFUL:
            if getattr(self, name) is not None:  # a discriminator in the file of a run without one is left out
                getattr(self, name).load_state_dict(state[name])
        self.rng.set_state(state["rng"])
        self.step, self.elapsed = state["step"], state["elapsed"]

    @torch.no_grad()
    def save_samples(self) -> None:
        held = self.dataset.tensor(self.held_index[:: max(1, len(self.held_index) // 8)][:8]).to(self.device)
        model = self.fitted_ema()
        recon = model.generate(model.encode(held)) if self.options.model == "autoencoder" else held[:0]
        per_class = 8
        y = torch.arange(model.num_classes, device=self.device).repeat_interleave(per_class)
        samples = model.generate(model.sample_latents(y, torch.Generator().manual_seed(0)), y)
        rows = torch.cat([held, recon, samples]).cpu()
        save_grid(rows, self.run_dir / "samples" / f"step{self.step:06d}.png", ncol=8)

    # the loop -------------------------------------------------------------------------------
    def run(self, command: str | None = None) -> Path:
        o = self.options
        log = open(self.run_dir / "metrics.jsonl", "a")
        bar = tqdm(total=100, desc="training generator", unit="%", initial=int(100 * self.progress()))
        try:
            while self.progress() < 1.0:
                start = time.perf_counter()
                logs = self.train_step()
                self.elapsed += time.perf_counter() - start
                if self.step % 25 == 0:
                    logs |= {"step": self.step, "seconds": round(self.elapsed, 1), "lr": self.opt.param_groups[0]["lr"],
                             "images_per_s": round(self.step * o.batch_size / max(self.elapsed, 1e-9), 1)}
                    log.write(json.dumps(logs) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("l1", "lpips", "d_loss", "g_adv")})
                    bar.update(int(100 * self.progress()) - bar.n)
                if self.step % o.sample_every == 0:
                    self.save_samples()
                if self.step % o.checkpoint_every == 0:
                    self.save_checkpoint(command)
            bar.update(100 - bar.n)
        except KeyboardInterrupt:
            self.save_checkpoint(command)
            raise
        finally:
            bar.close()
            log.close()
        self.save_samples()
        return self.save_checkpoint(command)

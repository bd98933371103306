import json

import numpy as np
import pytest
import torch

from teachset.cli import main
from teachset.data import load_dataset
from teachset.errors import OptionError, TeachsetError
from teachset.features.lpips import LPIPS
from teachset.generators import Generator, bundled_generators, load_generator, save_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.generators.blocks import GroupNorm
from teachset.generators.cgan import ConditionalGAN
from teachset.generators.devices import native_bf16_cpu, resolve_device, resolve_precision
from teachset.generators.invert import invert
from teachset.generators.quality import evaluate_generator, kid, two_sample_accuracy
from teachset.generators.train import GeneratorTrainer, TrainOptions, resume_generator, train_generator
from teachset.generators.upsample import Upsampled
from teachset.methods import TeachingData, make_method
from teachset.seeded import seeded_init


@pytest.fixture(scope="module")
def digits32():
    return load_dataset("digits", image_size=32)


@pytest.mark.parametrize("size,code_grid", [(32, 0), (64, 0), (128, 0), (32, 4), (64, 8)])
def test_autoencoder_runs_at_each_size_and_is_differentiable_in_z(size, code_grid):
    model = Autoencoder(image_size=size, channels=3, latent_dim=64, width=8, code_grid=code_grid).freeze()
    z = torch.randn(2, 64, requires_grad=True)
    images = model.generate(z)
    assert images.shape == (2, 3, size, size) and 0 <= images.min() and images.max() <= 1
    images.sum().backward()
    assert z.grad.abs().sum() > 0 and all(p.grad is None for p in model.parameters())
    assert model.encode(images.detach()).shape == (2, 64)


def test_a_code_grid_must_fit_the_image_and_the_latent_size():
    for grid, dim in ((3, 63), (32, 1024), (2, 64), (4, 60)):  # not a power of two, not below the size, too small, not whole channels
        with pytest.raises(TeachsetError, match=f"code grid of {grid} does not fit"):
            Autoencoder(image_size=32, latent_dim=dim, width=8, code_grid=grid)


def test_group_norm_on_channels_last_tensors_is_plain_group_norm():
    ours, plain = GroupNorm(4, 16), torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        plain.weight.normal_(), plain.bias.normal_()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 8, 8) * 3 + 1
    xl = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = ours(xl)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.allclose(out, plain(x), atol=1e-5)
    out.pow(2).sum().backward()
    x.requires_grad_(True)
    plain(x).pow(2).sum().backward()
    assert torch.allclose(xl.grad, x.grad, atol=1e-4)


def test_class_prior_sampling_nll_and_truncation():
    model = Autoencoder(image_size=32, latent_dim=4, width=8, num_classes=2)
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(500, 4, generator=g) * 2 + 5, torch.randn(500, 4, generator=g) - 5])
    y = torch.repeat_interleave(torch.tensor([0, 1]), 500)
    model.fit_prior(z, y)
    samples = model.sample_latents(torch.zeros(2000, dtype=torch.long), g)
    # kernel density: a class-0 training code plus bandwidth-scaled noise of the class covariance
    assert torch.allclose(samples.mean(0), torch.full((4,), 5.0), atol=0.2)
    assert torch.allclose(samples.std(0), torch.full((4,), 2.0 * (1 + model.prior_bandwidth**2) ** 0.5), atol=0.2)
    nearest = torch.cdist(samples, z).argmin(1)
    assert (y[nearest] == 0).all()
    model.prior_codes = model.prior_codes[:0]  # no codes (an older checkpoint): the class Gaussian
    samples = model.sample_latents(torch.ones(2000, dtype=torch.long), g)
    assert torch.allclose(samples.std(0), torch.full((4,), 1.0), atol=0.1)
    assert model.prior_nll(model.prior_mean[:1], torch.tensor([0])).item() < 1e-8
    far = torch.full((1, 4), 100.0)
    pulled = model.truncate(far, torch.tensor([1]), radius=1.0)
    assert model.prior_nll(pulled, torch.tensor([1])).item() == pytest.approx(4.0, rel=1e-4)


@pytest.mark.parametrize("code_grid", [0, 4])
def test_checkpoint_round_trip(tmp_path, code_grid):
    model = Autoencoder(image_size=32, latent_dim=16, width=8, class_names=["a", "b"], code_grid=code_grid)
    model.fit_prior(torch.randn(10, 16), torch.arange(10) % 2)
    loaded = load_generator(save_generator(model, tmp_path / "ckpt", {"dataset": {"name": "x"}}))
    z = torch.randn(3, 16)
    assert loaded.code_grid == code_grid and torch.equal(loaded.generate(z), model.eval().generate(z))


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model = Autoencoder(image_size=32, latent_dim=8, width=8, class_names=["a", "b"])
    model.fit_prior(torch.randn(10, 8), torch.arange(10) % 2)
    folder = save_generator(model, tmp_path / "ckpt", {"dataset": {"name": "x"}})
    loaded = load_generator(folder)
    z = torch.randn(3, 8)
    assert torch.equal(loaded.generate(z), model.eval().generate(z)) and loaded.class_names == ["a", "b"]
    assert torch.equal(loaded.prior_codes, model.prior_codes) and torch.equal(loaded.prior_code_labels, model.prior_code_labels)
    y = torch.tensor([0, 1, 1])
    assert torch.equal(loaded.sample_latents(y, torch.Generator().manual_seed(1)), model.sample_latents(y, torch.Generator().manual_seed(1)))
    bad = Autoencoder(image_size=32, latent_dim=8, width=8)
    with pytest.raises(RuntimeError, match="prior codes"):
        bad.load_state_dict({**model.state_dict(), "prior_codes": torch.zeros(10, 7)})
    assert not list(folder.glob("*.pt")) and json.loads((folder / "generator.json").read_text())["kind"] == "autoencoder"
    with pytest.raises(TeachsetError, match="not a generator checkpoint"):
        load_generator(tmp_path)
    meta = json.loads((folder / "generator.json").read_text())
    meta["config"]["latent_dim"] = 9
    (folder / "generator.json").write_text(json.dumps(meta))
    with pytest.raises(TeachsetError, match="does not match its own config"):
        load_generator(folder)
    (folder / "generator.safetensors").write_bytes(b"garbage")
    with pytest.raises(TeachsetError, match="damaged"):
        load_generator(folder)
    with pytest.raises(TeachsetError, match="no bundled generator 'nope'"):
        load_generator("teachset:nope")


class _Conditional(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.latent_dim, self.num_classes, self.conditional = 4, 2, True
        self.lin = torch.nn.Linear(4, 16 * 16)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(z) + y[:, None].float()).view(-1, 1, 16, 16)


class _Flat(torch.nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 2, 2)


def test_external_torchscript_generators(tmp_path):
    path = tmp_path / "g.pt"
    torch.jit.script(_Conditional()).save(str(path))
    g = load_generator(path, output_range=(-1.0, 1.0))
    assert (g.latent_dim, g.num_classes, g.image_size, g.channels) == (4, 2, 16, 1)
    z = torch.randn(3, 4, requires_grad=True)
    images = g.generate(z, torch.tensor([0, 1, 1]))
    assert 0 <= images.min() and images.max() <= 1
    images.sum().backward()
    assert z.grad is not None
    flat = tmp_path / "flat.pt"
    torch.jit.script(_Flat()).save(str(flat))
    assert load_generator(flat, latent_dim=4, num_classes=2).image_size == 2
    with pytest.raises(TeachsetError, match=r"cannot be called as \(z\) with z of shape \(2, 5\)"):
        load_generator(flat, latent_dim=5, num_classes=2)
    with pytest.raises(TeachsetError, match="does not declare latent_dim"):
        load_generator(flat)
    (tmp_path / "not.pt").write_bytes(b"nope")
    with pytest.raises(TeachsetError, match="not a TorchScript module"):
        load_generator(tmp_path / "not.pt", latent_dim=4, num_classes=2)


def test_lpips_is_a_perceptual_distance():
    lpips = LPIPS("alexnet")
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    small, large = x + 0.02 * torch.randn_like(x), x + 0.2 * torch.randn_like(x)
    assert lpips(x, x).abs().max() < 1e-6
    assert torch.allclose(lpips(x, small), lpips(small, x), atol=1e-6)
    assert (lpips(x, small) < lpips(x, large)).all()


def test_training_writes_samples_checkpoints_and_resumes(digits32, tmp_path):
    options = TrainOptions(steps=4, batch_size=8, width=8, latent_dim=64, adversarial_weight=0.05,
                           adversarial_start=0.5, sample_every=2, checkpoint_every=2)
    assert options.minutes is None and TrainOptions().minutes == 30  # a step budget alone; 30 minutes without one
    first = "teachset generator train digits --size 32 --steps 4"
    trainer = train_generator(digits32, options, tmp_path / "runs", precision="bf16", command=first)
    run = trainer.run_dir
    assert run.parent == tmp_path / "runs" and trainer.step_ == 4 and trainer.checkpoint_ == run / "checkpoint"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step000002.png", "step000004.png"]
    model = load_generator(trainer.checkpoint_)
    assert model.meta["step"] == 4 and model.meta["command"] == first
    # trained on the train split only: the record names it, and no held-out image is a training image
    from teachset.data.splits import Split, split_dataset

    parts = split_dataset(digits32, Split())
    assert model.meta["dataset"] == parts.train.record() and model.meta["dataset"]["split"]["part"] == "train"
    assert set(model.meta["held_out_ids"]) == set(parts.test.ids)
    assert model.meta["precision"] == "bf16" and all(p.dtype == torch.float32 and p.isfinite().all() for p in model.parameters())
    assert len(model.meta["held_out_ids"]) == pytest.approx(0.2 * len(digits32), abs=10)
    resumed = resume_generator(run, digits32, steps=6, precision="fp32", command="teachset generator train digits --resume R")
    assert resumed.step_ == 6 and {"step": 6, "precision": "fp32"}.items() <= load_generator(run / "checkpoint").meta.items()
    recorded = json.loads((run / "options.json").read_text())
    assert recorded["command"] == first + " && teachset generator train digits --resume R" and recorded["train"]["steps"] == 6
    with pytest.raises(TeachsetError, match="has no options.json"):
        resume_generator(tmp_path, digits32)
    with pytest.raises(TeachsetError, match="differs in image_size"):
        resume_generator(run, load_dataset("digits", image_size=16), steps=8)
    main(["generator", "train", "digits", "--resume", str(run), "--steps", "7", "--precision", "fp32"])  # the recorded 32 px
    assert load_generator(run / "checkpoint").meta["step"] == 7


def test_training_is_seeded_and_leaves_the_global_random_state_and_backend_alone(digits32, tmp_path):
    from teachset.generators.devices import training_backend

    options = TrainOptions(model="cgan", steps=1, batch_size=8, width=8, latent_dim=8)
    state = torch.random.get_rng_state()
    a, b = (GeneratorTrainer(options, tmp_path / name).setup(digits32) for name in "ab")
    a.train_step(), b.train_step()
    assert torch.equal(torch.random.get_rng_state(), state)
    for name in ("model_", "disc_"):  # the weights and the spectral norm's vectors come from the seed alone
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, name).state_dict().values(), getattr(b, name).state_dict().values()))
    other = GeneratorTrainer(TrainOptions(**{**options.__dict__, "seed": 1}), tmp_path / "c").setup(digits32)
    assert not torch.equal(other.disc_.net[0].weight_u, GeneratorTrainer(options, tmp_path / "d").setup(digits32).disc_.net[0].weight_u)
    flags = lambda: (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)  # noqa: E731
    before = flags()
    with training_backend(torch.device("cuda")):  # only sets flags: runs without a GPU
        assert flags() == (True, True)
    assert flags() == before


@pytest.mark.parametrize("weight", [0.0, 0.05])
def test_the_discriminator_exists_and_trains_only_when_the_adversarial_term_is_weighted(digits32, tmp_path, weight):
    options = TrainOptions(steps=2, batch_size=8, width=8, latent_dim=64, adversarial_weight=weight, adversarial_start=0.0)
    trainer = GeneratorTrainer(options, tmp_path).setup(digits32)
    assert (trainer.disc_ is not None) == (trainer.opt_d_ is not None) == (weight > 0)
    before = [p.detach().clone() for p in trainer.disc_.parameters()] if trainer.disc_ else []
    logs = trainer.train_step()
    moved = trainer.disc_ is not None and any(not torch.equal(a, b) for a, b in zip(before, trainer.disc_.parameters()))
    assert ("d_loss" in logs) == moved == (weight > 0)
    trainer.save_checkpoint()
    resumed = GeneratorTrainer(options, tmp_path).setup(digits32).load_resume()
    assert resumed.step_ == 1 and all(torch.equal(a, b) for a, b in zip(resumed.model_.parameters(), trainer.model_.parameters()))
    if weight:
        assert all(torch.equal(a, b) for a, b in zip(resumed.disc_.state_dict().values(), trainer.disc_.state_dict().values()))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_learning_rates_follow_the_schedule_over_the_budget(digits32, tmp_path, schedule):
    options = TrainOptions(steps=4, batch_size=8, width=8, latent_dim=64, lr_schedule=schedule, adversarial_weight=0.05)
    trainer = GeneratorTrainer(options, tmp_path).setup(digits32)
    rates = []
    for _ in range(4):
        trainer.train_step()
        rates.append((trainer.opt_.param_groups[0]["lr"] / options.lr, trainer.opt_d_.param_groups[0]["lr"] / options.disc_lr))
    expected = [1.0, 0.5 + 0.5 ** 1.5, 0.5, 0.5 - 0.5 ** 1.5] if schedule == "cosine" else [1.0] * 4
    assert [g for g, _ in rates] == pytest.approx(expected) and [d for _, d in rates] == pytest.approx(expected)


def test_conditional_gan_option_trains_and_inverts_without_an_encoder(digits32, tmp_path):
    options = TrainOptions(model="cgan", steps=2, batch_size=8, width=8, latent_dim=8, sample_every=2, checkpoint_every=2)
    trainer = GeneratorTrainer(options, tmp_path).fit(digits32)
    model = load_generator(trainer.checkpoint_)
    assert model.kind == "cgan"
    y = torch.tensor([3, 7])
    assert model.generate(model.sample_latents(y), y).shape == (2, 1, 32, 32)
    with pytest.raises(TeachsetError, match="needs the labels"):
        model.generate(torch.randn(2, 8))
    with pytest.raises(TeachsetError, match="no encoder"):
        model.encode(digits32.tensor(slice(0, 2)))
    z, report = invert(model, digits32.tensor(slice(0, 2)), torch.from_numpy(digits32.labels[:2]), steps=20)
    objective = lambda r: r["lpips_alexnet"] + r["l1"]  # what the refinement minimises
    assert z.shape == (2, 8) and objective(report["refined"]) < objective(report["encoder"])


def test_recorded_options_of_older_runs_keep_what_those_runs_had():
    from dataclasses import asdict

    assert TrainOptions.recorded(asdict(TrainOptions(seed=3))) == TrainOptions(seed=3)
    old = TrainOptions.recorded({"latent_dim": 128, "steps": 10, "an_option_since_removed": 1})
    assert (old.code_grid, old.prior_bandwidth, old.latent_dim, old.steps) == (0, 0.3, 128, 10)


@pytest.mark.parametrize("values,option,says", [
    ({"latent_dim": 100}, "latent_dim", "code grid of 8 does not fit the latent size 100"),
    ({"code_grid": 3}, "code_grid", "code grid of 3 does not fit"),
    ({"prior_bandwidth": -1.0}, "prior_bandwidth", "'prior_bandwidth' must be at least 0"),
    ({"lr_schedule": "linear"}, "lr_schedule", "'lr_schedule' must be one of cosine, constant; got 'linear'"),
    ({"model": "vae"}, "model", "must be one of autoencoder, cgan"),
    ({"adversarial_start": 1.5}, "adversarial_start", "fraction of the budget"),
    ({"ema": 1.0}, "ema", "fraction below 1"),
    ({"minutes": 0.0}, "minutes", "must be above 0"),
])
def test_bad_options_are_refused_naming_the_option(values, option, says):
    with pytest.raises(OptionError, match=says) as error:
        TrainOptions(**values)
    assert error.value.option == option
    assert TrainOptions(model="cgan", latent_dim=100).latent_dim == 100  # the code grid is the autoencoder's


def test_training_refuses_bad_data_before_a_run_folder_is_made(digits32, tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(TeachsetError, match="power-of-two sizes"):
        train_generator(load_dataset("digits", image_size=24), TrainOptions(), runs)
    few = load_dataset("digits", image_size=32)
    keep = np.concatenate([np.flatnonzero(few.labels == 0)[:5], np.flatnonzero(few.labels == 1)])
    few.images, few.labels, few.ids = few.images[keep], few.labels[keep], [few.ids[i] for i in keep]
    few.class_names = ["0", "1"]
    with pytest.raises(TeachsetError, match="fewer than 10 images"):
        train_generator(few, TrainOptions(), runs)
    with pytest.raises(OptionError, match=r"code grid of 32 does not fit: 'code_grid' .* half the image size \(32 px\)"):
        train_generator(digits32, TrainOptions(code_grid=32, latent_dim=4096), runs)
    with pytest.raises(TeachsetError, match="unknown device 'gpu0'"):
        train_generator(digits32, TrainOptions(), runs, device="gpu0")
    with pytest.raises(TeachsetError, match="unknown precision 'fp16': 'precision' takes auto, fp32 or bf16"):
        train_generator(digits32, TrainOptions(), runs, precision="fp16")
    assert not runs.exists()
    if not torch.cuda.is_available():
        with pytest.raises(TeachsetError, match="not available here"):
            GeneratorTrainer(TrainOptions(), tmp_path, device="cuda")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native_bf16_cpu() else "fp32")


def test_quality_metrics_separate_same_from_different():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    shifted = rng.normal(size=(300, 8)) + 1.0
    assert abs(kid(a, b, subsets=10, subset_size=100)[0]) < 0.02 < kid(a, shifted, subsets=10, subset_size=100)[0]
    assert two_sample_accuracy(a, b) < 0.6 and two_sample_accuracy(a, shifted) > 0.8


def test_evaluate_generator_reports_floor_and_grids(digits32, tmp_path):
    model = Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=10, class_names=digits32.class_names).freeze()
    held = digits32.ids[::5]
    results = evaluate_generator(model, digits32, held, tmp_path, extractor="pixels", input_size=None)
    floor, samples = results["floor"], results["samples"]
    assert floor["class_consistency"] > 0.9 and abs(floor["kid"]) < 0.05
    assert samples["class_consistency"] < 0.5 and samples["kid"] > floor["kid"]  # an untrained generator is caught
    assert len(results["grids"]) == 10 and (tmp_path / "quality.json").is_file()


def test_inversion_refines_the_encoder(digits32):
    model = Autoencoder(image_size=32, latent_dim=16, width=8, num_classes=10).freeze()
    images, labels = digits32.tensor(slice(0, 4)), torch.from_numpy(digits32.labels[:4])
    z, report = invert(model, images, labels, steps=30, lr=0.1)
    assert z.shape == (4, 16)
    assert report["refined"]["lpips_alexnet"] < report["encoder"]["lpips_alexnet"]


class _Decoder(torch.nn.Module):
    """An external generator z -> image (32 px, 10 classes), as a user would export one."""

    def __init__(self):
        super().__init__()
        self.latent_dim, self.num_classes, self.conditional = 8, 10, False
        self.lin = torch.nn.Linear(8, 32 * 32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(z)).view(-1, 1, 32, 32)


class _ConditionalDecoder(_Decoder):
    """(z, y) -> image."""

    def __init__(self):
        super().__init__()
        self.conditional = True
        self.embed = torch.nn.Embedding(10, 32 * 32)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(z) + self.embed(y)).view(-1, 1, 32, 32)


KINDS = ["autoencoder", "upsampled", "cgan", "torchscript", "torchscript-conditional"]
ENCODERS = ("autoencoder", "upsampled")


@pytest.fixture(scope="module")
def generator_files(digits32, tmp_path_factory):
    """One small untrained generator of every kind, saved as a user would have it: checkpoint
    folders that record their dataset, and TorchScript files."""
    folder, init = tmp_path_factory.mktemp("generators"), torch.Generator().manual_seed(0)
    names = digits32.class_names
    autoencoder = seeded_init(Autoencoder(image_size=32, latent_dim=16, width=8, num_classes=10, class_names=names), init)
    with torch.no_grad():
        autoencoder.fit_prior(autoencoder.encode(digits32.tensor(slice(0, 300))), torch.from_numpy(digits32.labels[:300]))
    base = seeded_init(Autoencoder(image_size=16, latent_dim=16, width=8, num_classes=10, class_names=names), init)
    with torch.no_grad():
        upsampled = Upsampled(base, width=8)
        upsampled.base.fit_prior(upsampled.encode(digits32.tensor(slice(0, 300))), torch.from_numpy(digits32.labels[:300]))
        seeded_init(upsampled.stage, init)  # a stage that does something (an untrained one is bilinear upsampling)
        upsampled.stage[-2].weight.mul_(0.1)
    cgan = seeded_init(ConditionalGAN(image_size=32, latent_dim=8, width=8, num_classes=10, class_names=names), init)
    record = {"dataset": digits32.record(), "held_out_ids": digits32.ids[::5]}
    files = {"autoencoder": save_generator(autoencoder, folder / "autoencoder", record),
             "upsampled": save_generator(upsampled, folder / "upsampled", record),
             "cgan": save_generator(cgan, folder / "cgan", record)}
    for kind, module in (("torchscript", _Decoder()), ("torchscript-conditional", _ConditionalDecoder())):
        files[kind] = folder / f"{kind}.pt"
        torch.jit.script(seeded_init(module, init)).save(str(files[kind]))
    return files


@pytest.mark.parametrize("kind", KINDS)
def test_every_generator_kind_serves_one_interface_from_sampling_to_a_teacher_epoch(kind, generator_files, digits32, tmp_path):
    g = load_generator(generator_files[kind])
    assert isinstance(g, Generator) and g.source == str(generator_files[kind])
    assert (g.image_size, g.channels, g.num_classes) == (32, 1, 10)
    y = torch.tensor([0, 3, 9])
    z = g.sample_latents(y, torch.Generator().manual_seed(0))
    assert z.shape == (3, g.latent_dim) and torch.equal(z, g.sample_latents(y, torch.Generator().manual_seed(0)))
    z.requires_grad_(True)
    images = g.generate(z, y)
    assert images.shape == (3, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    images.sum().backward()
    assert z.grad.abs().sum() > 0 and all(p.grad is None for p in g.parameters())  # frozen: gradients reach z only
    real, labels = digits32.tensor(slice(0, 2)), torch.from_numpy(digits32.labels[:2])
    if kind in ENCODERS:
        assert g.encode(real).shape == (2, g.latent_dim)
    else:
        with pytest.raises(TeachsetError, match="no encoder"):
            g.encode(real)
    codes, report = invert(g, real, labels, steps=2)
    assert codes.shape == (2, g.latent_dim) and report["refined"]["l1"] >= 0
    results = evaluate_generator(g, digits32, digits32.ids[::5], tmp_path / "eval", extractor="pixels", input_size=None)
    assert ("reconstructions" in results) == (kind in ENCODERS) and len(results["grids"]) == 10
    assert 0 <= results["samples"]["class_consistency"] <= 1
    data = TeachingData(digits32, digits32.tensor().flatten(1).numpy(), "pixels")
    taught = make_method("latent", generator=g, epochs=1).make(data, per_class=1)
    assert taught.images.shape == (10, 1, 32, 32) and taught.latents.shape == (10, g.latent_dim)
    assert len(taught.curve) == 1


def test_generator_eval_command_on_a_cgan_checkpoint_and_a_conditional_torchscript_file(generator_files, tmp_path, capsys):
    pixels = ["--extractor", "pixels", "--input-size", "32"]
    assert main(["generator", "eval", str(generator_files["cgan"]), *pixels, "--out", str(tmp_path / "cgan")]) == 0
    assert main(["generator", "eval", str(generator_files["torchscript-conditional"]), "--dataset", "digits", *pixels,
                 "--out", str(tmp_path / "torchscript")]) == 0
    assert capsys.readouterr().out.count("samples from the prior") == 2
    assert (tmp_path / "cgan" / "quality.json").is_file() and (tmp_path / "torchscript" / "quality.json").is_file()
    assert main(["generator", "eval", str(generator_files["torchscript"]), *pixels, "--out", str(tmp_path / "x")]) == 2
    assert "records no dataset; give the real images as --dataset" in capsys.readouterr().err


def test_an_untrained_upsampling_stage_is_bilinear_upsampling_of_its_base():
    base = seeded_init(Autoencoder(image_size=16, latent_dim=16, width=8, num_classes=2), torch.Generator().manual_seed(0))
    model = Upsampled(base, width=8)
    assert (model.image_size, model.latent_dim, model.num_classes) == (32, 16, 2) and not any(p.requires_grad for p in model.base.parameters())
    z, y = torch.randn(3, 16), torch.tensor([0, 1, 1])
    bilinear = torch.nn.functional.interpolate(base.generate(z, y), scale_factor=2, mode="bilinear")
    assert torch.allclose(model.generate(z, y), bilinear.clamp(1e-3, 1 - 1e-3), atol=1e-6)
    assert torch.equal(model.prior_nll(z, y), base.prior_nll(z, y))


def test_training_an_upsampling_stage_on_a_trained_generator(digits32, tmp_path):
    """The stage alone trains (the base's weights and prior stay as they were), on the base's own
    train part; a base that does not fit the dataset is refused before a run folder is made."""
    small = TrainOptions(steps=2, batch_size=8, width=8, latent_dim=16, code_grid=0)
    digits64 = load_dataset("digits", image_size=64)
    base = train_generator(digits32, small, tmp_path / "runs").checkpoint_
    stage = train_generator(digits64, TrainOptions(base=str(base), steps=3, batch_size=8, width=4), tmp_path / "runs")
    model, before = load_generator(stage.checkpoint_), load_generator(base)
    assert model.kind == "upsampled" and model.image_size == 64 and model.meta["held_out_ids"] == before.meta["held_out_ids"]
    assert all(torch.equal(a, b) for a, b in zip(model.base.state_dict().values(), before.state_dict().values()))
    assert model.stage[-2].weight.abs().sum() > 0  # the stage learned something
    assert model.meta["dataset"]["spec"]["image_size"] == 64 and model.meta["dataset"]["split"]["part"] == "train"
    with pytest.raises(OptionError, match="must make 1x32px images") as error:
        train_generator(digits64, TrainOptions(base=str(stage.checkpoint_)), tmp_path / "other")
    assert error.value.option == "base" and not (tmp_path / "other").exists()


def test_the_protocol_imports_no_kind_and_the_bundled_generator_loads():
    import ast
    from pathlib import Path

    import teachset.generators.base as base

    imported = {node.module for node in ast.walk(ast.parse(Path(base.__file__).read_text())) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"autoencoder", "cgan", "external", "checkpoint", "train"}
    assert "elpv-64" in bundled_generators()
    g = load_generator("teachset:elpv-64")
    assert g.source == "teachset:elpv-64" and g.meta["dataset"]["name"] == "elpv" and (g.image_size, g.code_grid) == (64, 8)


def test_sigterm_stops_training_with_a_checkpoint_and_the_run_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "runs"
    command = [sys.executable, "-m", "teachset", "generator", "train", "digits", "--size", "32", "--steps", "100000",
               "--latent-dim", "64", "--width", "8", "--batch-size", "8", "--checkpoint-minutes", "0.005", "--out", str(out)]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/resume.pt")):  # a checkpoint by time, long before step 1,000
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130 and "interrupted" in process.stderr.read()
    (run,) = out.iterdir()
    stopped = json.loads((run / "checkpoint" / "generator.json").read_text())["step"]
    assert 0 < stopped < 1000
    assert main(["generator", "train", "digits", "--size", "32", "--resume", str(run), "--steps", str(stopped + 3)]) == 0
    assert json.loads((run / "checkpoint" / "generator.json").read_text())["step"] == stopped + 3


def test_flips_are_named_and_old_runs_keep_theirs():
    from teachset.generators.train import TrainOptions, _flip

    x = torch.arange(4.0).view(1, 1, 2, 2)
    draws = lambda: torch.Generator().manual_seed(3)  # noqa: E731  (this seed draws both flips)
    assert torch.equal(_flip(x, "horizontal", draws()), x.flip(-1)) and torch.equal(_flip(x, "vertical", draws()), x.flip(-2))
    assert torch.equal(_flip(x, "both", draws()), x.flip(-1).flip(-2))
    assert TrainOptions.recorded({"flip": True}).flip == "both" and TrainOptions.recorded({"flip": False}).flip == "none"


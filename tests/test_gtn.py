"""Generative Teaching Networks: each differentiable piece against a reference, and the run end to end on tiny data."""

import argparse

import numpy as np
import pytest
import torch

from teachset.errors import OptionError, TeachsetError
from teachset.gtn import (GTNOptions, GTNTrainer, LearnerSpec, few_step_accuracy, forward, init_params, search_space,
                          train_learner, weight_norm)
from teachset.gtn.artifacts import export_teaching_set, load_checkpoint, save_checkpoint
from teachset.gtn.nas import rank_architectures
from teachset.gtn.teachers import Generator, GTNTeacher, InnerHyper, PixelTeacher
from teachset.gtn.train import build_discriminator, build_teacher
from teachset.teaching_set import TeachingSet


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_digits():
    """200 sklearn digits at 8 px: (train images, train labels, test images, test labels)."""
    from teachset.data import load_dataset

    d = load_dataset("digits", image_size=8)
    x, y = d.tensor(), torch.from_numpy(d.labels)
    return x[:400], y[:400], x[400:800], y[400:800]


def test_weight_norm_layer_equals_its_definition_and_torch():
    g = torch.Generator().manual_seed(0)
    v, gain = torch.randn(5, 3, 3, 3, generator=g), torch.rand(5, generator=g) + 0.5
    expected = torch.stack([gain[i] * v[i] / v[i].norm() for i in range(5)])
    assert torch.allclose(weight_norm(v, gain), expected, atol=1e-6)
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(3, 5, 3, padding=1, bias=False))
    conv.parametrizations.weight.original0.data = gain.view(5, 1, 1, 1)
    conv.parametrizations.weight.original1.data = v
    spec = LearnerSpec("conv", (5,), weight_norm=True)
    x = torch.rand(2, 3, 4, 4, generator=g)
    params = init_params(spec, 3, 4, 2, g)
    params[0], params[1], params[2] = v, gain, torch.zeros(5)
    h = torch.nn.functional.max_pool2d(torch.nn.functional.leaky_relu(conv(x * 2 - 1), 0.1), 2)
    assert torch.allclose(forward(spec, params, x), torch.nn.functional.linear(h.flatten(1), params[3] * (params[4] / params[3].norm(dim=1)).view(-1, 1), params[5]), atol=1e-5)


def test_weight_norm_and_plain_learners_start_as_the_same_function():
    x = torch.rand(4, 1, 8, 8)
    for kind, widths in (("mlp", (16,)), ("conv", (4, 8))):
        wn = forward(LearnerSpec(kind, widths, weight_norm=True), init_params(LearnerSpec(kind, widths, weight_norm=True), 1, 8, 3, torch.Generator().manual_seed(1)), x)
        plain_spec = LearnerSpec(kind, widths, weight_norm=False)
        plain = forward(plain_spec, init_params(plain_spec, 1, 8, 3, torch.Generator().manual_seed(1)), x)
        assert wn.shape == (4, 3) and torch.allclose(wn, plain, atol=1e-5)


def _tiny_meta_loss(teacher, spec, checkpointing=False):
    x_real = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y_real = torch.tensor([0, 1, 0, 1, 0, 1])
    params = [p.detach().double().requires_grad_() for p in init_params(spec, 1, 4, 2, torch.Generator().manual_seed(3))]
    trained = train_learner(spec, params, teacher, 3, torch.Generator().manual_seed(4), differentiable=True, checkpointing=checkpointing)
    return torch.nn.functional.cross_entropy(forward(spec, trained, x_real), y_real)


@pytest.mark.parametrize("weight_norm_layers", [True, False])
def test_meta_gradient_through_the_unroll_matches_finite_differences(weight_norm_layers):
    spec = LearnerSpec("mlp", (3,), weight_norm=weight_norm_layers)
    teacher = PixelTeacher(3, 4, 2, 1, 4, InnerHyper(0.3, 0.5), torch.Generator().manual_seed(0)).double()
    loss = _tiny_meta_loss(teacher, spec)
    grads = torch.autograd.grad(loss, [teacher.pixels, teacher.hyper.log_lr, teacher.hyper.momentum_logit])
    eps = 1e-6
    for tensor, grad in zip([teacher.pixels, teacher.hyper.log_lr, teacher.hyper.momentum_logit], grads):
        flat, gflat = tensor.data.view(-1), grad.reshape(-1)
        for i in [0, len(flat) // 2, len(flat) - 1]:
            old = flat[i].item()
            flat[i] = old + eps
            up = _tiny_meta_loss(teacher, spec).item()
            flat[i] = old - eps
            down = _tiny_meta_loss(teacher, spec).item()
            flat[i] = old
            assert gflat[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)
    checkpointed = torch.autograd.grad(_tiny_meta_loss(teacher, spec, checkpointing=True), teacher.pixels)[0]
    assert torch.allclose(checkpointed, grads[0], atol=1e-10)


def test_meta_gradient_reaches_the_generator_and_curriculum():
    init = torch.Generator().manual_seed(0)
    gen = Generator(4, 2, 1, 4, kind="mlp", width=4).double()
    teacher = GTNTeacher(gen, 3, 4, 4, "learned", InnerHyper(0.3, 0.5), init).double()
    loss = _tiny_meta_loss(teacher, LearnerSpec("mlp", (3,)))
    loss.backward()
    assert teacher.noise.grad.abs().sum() > 0 and all(p.grad is not None for p in gen.parameters())


def test_curriculum_options():
    init, rng = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    make = lambda mode: GTNTeacher(Generator(6, 3, 1, 8, kind="mlp", width=4), 5, 9, 6, mode, InnerHyper(0.1, 0.5), init)
    learned, shuffled, none = make("learned"), make("shuffled"), make("none")
    assert learned.noise.shape == (5, 9, 6) and learned.order(5, rng) == [0, 1, 2, 3, 4]
    assert learned.order(7, rng) == [0, 1, 2, 3, 4, 0, 1]
    orders = [shuffled.order(5, rng) for _ in range(5)]
    assert all(sorted(o) == [0, 1, 2, 3, 4] for o in orders) and len({tuple(o) for o in orders}) > 1
    assert learned.draw(0, rng) is None and none.noise is None
    a, b = none.draw(0, rng), none.draw(0, rng)
    assert a.shape == (9, 6) and not torch.equal(a, b)
    x, y = none.make(0, a)
    assert x.shape == (9, 1, 8, 8) and 0 <= x.min() and x.max() <= 1 and y.tolist() == [0, 1, 2] * 3


def test_label_modes():
    init = torch.Generator().manual_seed(0)
    for soft in (False, True):
        t = GTNTeacher(Generator(4, 3, 1, 8, kind="conv", width=4, soft_labels=soft), 2, 6, 4, "learned", InnerHyper(0.1, 0.5), init)
        x, target = t.make(1, None)
        assert x.shape == (6, 1, 8, 8)
        if soft:
            assert target.shape == (6, 3) and torch.allclose(target.sum(1), torch.ones(6))
            assert (target.argmax(1) == t.labels).all()  # the head starts at zero: the conditioning class leads
        else:
            assert target.dtype == torch.long and target.tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("source", ["gtn", "distill", "real"])
def test_meta_training_improves_few_step_accuracy(tiny_digits, source):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(source=source, inner_steps=8, batch_size=20, outer_steps=100, learner_widths=(32,), generator_width=16,
                         meta_batch=128, eval_every=0, outer_lr=3e-3, pixel_lr=5e-2, seed=0)
    start = build_teacher(options, (1, 8, 8), 10, x, y)  # the teacher fit starts from (same seed)
    before = few_step_accuracy(start, options.learner_spec, options.inner_steps, xt, yt, range(10_000, 10_006), 10)["mean"]
    trainer = GTNTrainer(options).fit(x, y, xt, yt)
    after = trainer.evaluate(6)["mean"]
    losses = [r["meta_loss"] for r in trainer.curve_]
    assert trainer.step_ == 100 and len(losses) == 100
    if source != "real":  # the control only learns lr and momentum: it starts good and stays good
        assert after > before + 0.15 and np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3
    assert after > 0.3


def test_gan_warm_up_and_realism_loss_move_generated_images_towards_real_ones(tiny_digits):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(inner_steps=2, batch_size=20, outer_steps=3, eval_every=0, gan_weight=0.3, gan_warmup=200,
                         generator_width=16)
    classes = torch.arange(100) % 10

    def distance(teacher):  # mean pixel distance from fresh generated images to their nearest real image of the same class
        with torch.no_grad():
            fake, _ = teacher.generator(torch.randn(100, options.noise_dim, generator=torch.Generator().manual_seed(0)), classes)
        d = torch.cdist(fake.flatten(1), x.flatten(1))
        return d.masked_fill(classes[:, None] != y[None, :], float("inf")).min(1).values.mean()

    before = distance(build_teacher(options, (1, 8, 8), 10))  # the generator fit starts from (same seed)
    trainer = GTNTrainer(options).fit(x, y, xt, yt)
    assert trainer.warmup_steps_ == 200 and trainer.step_ == 3
    assert all("gan_d_loss" in r and "gan_g_loss" in r for r in trainer.curve_)
    assert distance(trainer.teacher_) < 0.7 * before


def test_export_and_checkpoint_round_trip(tmp_path, tiny_digits):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(inner_steps=3, batch_size=10, outer_steps=2, eval_every=0, labels="soft", curriculum="shuffled")
    trainer = GTNTrainer(options).fit(x, y, xt, yt)
    dataset = {"name": "digits", "fingerprint": "abc", "spec": {"source": "digits"}}
    save_checkpoint(trainer, tmp_path / "ckpt", dataset, [str(i) for i in range(10)])
    loaded_options, teacher, config = load_checkpoint(tmp_path / "ckpt")
    assert loaded_options == options and config["step"] == 2
    sets = [export_teaching_set(t, options, dataset, [str(i) for i in range(10)], per_class=2) for t in (trainer.teacher_, teacher)]
    assert np.array_equal(sets[0].images, sets[1].images)
    folder = sets[0].save(tmp_path / "set")
    loaded = TeachingSet.load(folder)
    assert loaded.images.shape == (20, 1, 8, 8) and loaded.method == "gtn" and np.array_equal(loaded.images, sets[0].images)
    assert sorted(np.bincount(loaded.labels).tolist()) == [2] * 10 and loaded.latents.shape == (20, options.noise_dim)
    with pytest.raises(TeachsetError, match="fewer than"):
        export_teaching_set(teacher, options, dataset, [str(i) for i in range(10)], per_class=4)


def test_architecture_ranking(tiny_digits):
    x, y, xt, yt = tiny_digits
    teacher = build_teacher(GTNOptions(source="distill", inner_steps=4, batch_size=10), (1, 8, 8), 10)
    specs = [LearnerSpec("mlp", (w,)) for w in (4, 16, 64)] + [LearnerSpec("conv", (4,))]
    result = rank_architectures({"distill": teacher}, specs, x, y, xt, yt, 10, few_steps=4, real_steps=30, batch_size=20)
    proxy = result["proxies"]["distill"]
    assert len(result["rows"]) == 4 and -1 <= proxy["spearman"] <= 1 and -1 <= result["spearman_real_few"] <= 1
    assert {result["best_by_real"], proxy["best_by_proxy"]} <= {r["architecture"] for r in result["rows"]}


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_outer_learning_rate_schedule(tiny_digits, schedule):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(inner_steps=2, batch_size=10, outer_steps=4, eval_every=0, outer_schedule=schedule)
    trainer = GTNTrainer(options).fit(x, y, xt, yt)
    rates = [group["lr"] for group in trainer.optimizer_.param_groups]
    expected = [0.0, 0.0] if schedule == "cosine" else [options.hyper_lr, options.outer_lr]
    assert rates == pytest.approx(expected, abs=1e-12)


def test_meta_training_on_sampled_architectures(tiny_digits):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(inner_steps=2, batch_size=10, outer_steps=12, eval_every=0, sample_architectures=True)
    trainer = GTNTrainer(options).fit(x, y, xt, yt)
    used = {r["learner"] for r in trainer.curve_}
    assert len(used) > 3 and used <= {spec.describe() for spec in search_space()}
    assert all(np.isfinite(r["meta_loss"]) and np.isfinite(r["grad_norm"]) for r in trainer.curve_)


def test_options_are_checked_in_library_terms():
    for bad, pattern in (({"source": "gan"}, "'source' must be one of gtn, real, distill"),
                         ({"inner_steps": 0}, "'inner_steps' must be at least 1"),
                         ({"inner_momentum": 1.0}, "'inner_momentum' must be below 1"),
                         ({"learner_widths": (16, 0)}, "'learner_widths' must all be at least 1"),
                         ({"source": "distill", "gan_weight": 0.1}, "'gan_weight' needs a generator"),
                         ({"gan_warmup": 10}, "'gan_warmup' .* a weight above 0")):
        with pytest.raises(OptionError, match=pattern):
            GTNOptions(**bad)
    assert GTNOptions(learner_widths=[8, 16]).learner_widths == (8, 16)


def test_initialisation_is_seeded_as_pytorch_would_without_the_global_random_state():
    options = GTNOptions(generator="conv", labels="soft", generator_width=4, seed=3)
    with torch.random.fork_rng(devices=[]):  # the generator: what constructing after torch.manual_seed(seed) gives
        torch.manual_seed(3)
        expected = Generator(options.noise_dim, 10, 1, 8, "conv", 4, soft_labels=True).state_dict()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        generator = build_teacher(options, (1, 8, 8), 10).generator.state_dict()
        first = build_discriminator(1, 10, 5).state_dict()
        torch.manual_seed(2)
        second, other = build_discriminator(1, 10, 5).state_dict(), build_discriminator(1, 10, 6).state_dict()
    assert expected.keys() == generator.keys() and all(torch.equal(expected[k], generator[k]) for k in expected)
    assert {"net.0.weight_u", "net.0.weight_v"} <= set(first)  # the spectral norm's vectors come from the seed too
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["net.0.weight_u"], other["net.0.weight_u"])
    assert torch.allclose(first["net.0.weight_u"].norm(), torch.tensor(1.0))


def test_meta_training_does_not_depend_on_the_global_random_state(tiny_digits):
    x, y, xt, yt = tiny_digits
    options = GTNOptions(inner_steps=2, batch_size=10, outer_steps=2, eval_every=0, gan_weight=0.1, gan_warmup=2)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(GTNTrainer(options).fit(x, y, xt, yt))
    a, b = (r.teacher_.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["meta_loss"] for r in runs[0].curve_] == [r["meta_loss"] for r in runs[1].curve_]


def test_cli_names_the_flag_of_a_bad_option(tmp_path, capsys):
    from teachset.cli import main

    out = ["--out", str(tmp_path / "runs")]
    assert main(["gtn", "train", "digits", "--size", "8", "--source", "real", "--gan-weight", "0.1", *out]) == 2
    assert "--gan-weight needs a generator" in capsys.readouterr().err
    assert main(["gtn", "train", "digits", "--size", "10", "--generator", "conv", *out]) == 2
    assert "set --generator to 'mlp'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def _parser():
    from teachset.cli.gtn import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    args.func(args)


def test_cli_rejects_bad_input(tmp_path, image_folder):
    single = tmp_path / "single"
    (single / "only").mkdir(parents=True)
    for f in (image_folder / "bright").iterdir():
        (single / "only" / f.name).write_bytes(f.read_bytes())
    out = ["--out", str(tmp_path / "runs")]
    with pytest.raises(TeachsetError, match="single class"):
        _run(["gtn", "train", str(single), "--size", "8", *out])
    with pytest.raises(TeachsetError, match="multiple of 4"):
        _run(["gtn", "train", str(image_folder), "--size", "10", "--generator", "conv", *out])
    with pytest.raises(TeachsetError, match="smaller than the 10 classes"):
        _run(["gtn", "train", "digits", "--size", "8", "--batch-size", "5", *out])
    with pytest.raises(TeachsetError, match="'test_fraction' must be below 1"):
        _run(["gtn", "train", "digits", "--size", "8", "--test-fraction", "1.5", *out])
    with pytest.raises(TeachsetError, match="needs a generator"):
        _run(["gtn", "train", "digits", "--size", "8", "--source", "real", "--gan-weight", "0.1", *out])
    assert not (tmp_path / "runs").exists()  # nothing is written before the input is checked


def test_cli_train_writes_a_run_folder(tmp_path, image_folder):
    _run(["gtn", "train", str(image_folder), "--size", "8", "--outer-steps", "3", "--inner-steps", "2", "--batch-size", "4",
          "--eval-every", "0", "--final-learners", "2", "--export-per-class", "3", "--sample-every", "2", "--out", str(tmp_path / "runs")])
    (run,) = (tmp_path / "runs").iterdir()
    for name in ("options.json", "curve.jsonl", "results.json", "checkpoint/gtn.safetensors", "checkpoint/gtn.json",
                 "samples/step-000002.png", "samples/final.png", "teaching_set/teaching_set.json"):
        assert (run / name).exists(), name
    assert len((run / "curve.jsonl").read_text().splitlines()) == 3
    assert len(TeachingSet.load(run / "teaching_set")) == 6

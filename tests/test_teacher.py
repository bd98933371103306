import json

import numpy as np
import pytest
import torch

from teachset.cli import main
from teachset.data import load_dataset
from teachset.errors import TeachsetError
from teachset.evaluate import Evaluator
from teachset.errors import OptionError
from teachset.features import build_extractor
from teachset.generators import save_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.methods import TeachingData, make_method, snap_to_real
from teachset.methods.teacher import Teacher, TeacherOptions
from teachset.seeded import seeded_init


PAPER = {"extractors": [], "views": 0, "anchor_weight": 0.0, "start": "prior"}  # one proxy, the mechanics alone


@pytest.fixture(scope="module")
def setup():
    dataset = load_dataset("digits", image_size=32)
    keep = np.flatnonzero(dataset.labels < 2)  # two classes: fast
    dataset.images, dataset.labels, dataset.ids = dataset.images[keep], dataset.labels[keep], [dataset.ids[i] for i in keep]
    dataset.class_names = ["0", "1"]
    data = TeachingData.load(dataset, "pixels", progress=False)
    generator = Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=2, class_names=["0", "1"])
    return data, seeded_init(generator, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("student,hypergradient", [("lc", "implicit"), ("lc", "unrolled"), ("nn", "implicit")])
def test_latent_teacher_lowers_the_students_loss_and_keeps_g_frozen(setup, student, hypergradient, tmp_path):
    data, generator = setup
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    method = make_method("latent", generator=generator, student=student, epochs=25, lr=0.2, hypergradient=hypergradient,
                         l2=0.01, unrolled_lr=0.01, **PAPER)
    ts = method.make(data, per_class=2)
    curve = ts.curve
    assert curve[-1]["outer_loss"] < curve[0]["outer_loss"] and len(curve) == 25
    assert len((ts.save(tmp_path / "set") / "curve.jsonl").read_text().splitlines()) == 25
    assert ts.method == f"latent-{student}" and ts.latents.shape == (4, 8) and ts.images.shape == (4, 1, 32, 32)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert all(p.grad is None for p in generator.parameters())
    # the set regenerates from its codes
    regenerated = generator.generate(torch.from_numpy(ts.latents))
    assert np.abs(np.rint(regenerated.detach().numpy() * 255) - ts.images).max() <= 1


def test_warm_started_newton_reaches_the_same_student_as_a_reset_one(setup):
    from teachset.hypergrad import augment, newton

    data, generator = setup
    labels = torch.tensor([0, 0, 1, 1])
    z = generator.sample_latents(labels, torch.Generator().manual_seed(0))
    teacher = Teacher(TeacherOptions(student="lc", epochs=5, lr=0.2, l2=0.01, views=0, extractors=()), lambda q: generator.generate(q, labels), labels,
                      build_extractor("pixels")).fit(z, data.features, data.dataset.labels)
    with torch.no_grad():
        phi = augment(build_extractor("pixels")(generator.generate(teacher.params_, labels)).double())
        # the student of the last step saw the codes before its update; compare on the codes it saw
        teacher.loss()
        reset = newton(phi, labels, teacher.theta0_, 0.01)
    assert torch.allclose(teacher.theta_, reset, atol=1e-7)


def test_pixel_teacher_and_snap_to_real(setup):
    data, _ = setup
    ts = make_method("pixels", student="lc", epochs=10, lr=0.1, l2=0.01, views=0, extractors=[]).make(data, per_class=2)
    assert ts.curve[-1]["outer_loss"] < ts.curve[0]["outer_loss"] and ts.method == "pixels-lc"
    snapped = snap_to_real(ts, data)
    assert snapped.method == "pixels-lc-snapped" and len(set(snapped.source_ids)) == 4
    assert np.array_equal(snapped.labels, ts.labels) and snapped.curve == ts.curve
    assert Evaluator(data).evaluate(snapped, repeats=1)[0]["n_test"] == len(data.dataset) - 4


def test_teacher_starts_from_a_selected_set_by_inverting_it(setup, tmp_path):
    data, generator = setup
    start = make_method("kcenters").make(data, per_class=2).save(tmp_path / "start")
    ts = make_method("latent", generator=generator, student="nn", epochs=2, init=str(start), **PAPER).make(data, per_class=2)
    assert np.array_equal(ts.labels, [0, 0, 1, 1]) and ts.params["init"] == str(start)


def test_mismatched_generator_is_refused(setup):
    data, _ = setup
    with pytest.raises(TeachsetError, match="load the dataset at 64 px"):
        make_method("latent", generator=Autoencoder(image_size=64, num_classes=2), epochs=1).make(data, per_class=1)
    with pytest.raises(OptionError, match="'l2' above 0"):
        TeacherOptions(l2=0)
    with pytest.raises(OptionError, match="needs a 'generator'"):
        make_method("latent").make(data, per_class=1)


def test_teach_command_writes_set_curve_and_snapped_set(setup, tmp_path, capsys):
    save_generator(Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=10), tmp_path / "g")
    out = tmp_path / "taught"
    assert main(["teach", "digits", "--generator", str(tmp_path / "g"), "--student", "nn", "--epochs", "3", "--per-class", "1",
                 "--extractor", "pixels", "--snap-to-real", "--out", str(out)]) == 0
    assert "proxy accuracy" in capsys.readouterr().out
    assert len((out / "curve.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "teaching_set.json").read_text())["items"][0]["latent"]
    assert (tmp_path / "taught-snapped" / "teaching_set.json").is_file()
    assert not list(tmp_path.glob(".*curve*"))
    assert main(["teach", "digits", "--student", "lc", "--epochs", "1"]) == 2
    assert "needs --generator" in capsys.readouterr().err


def test_a_generator_that_saw_the_test_images_is_refused(setup, tmp_path):
    from teachset.data.splits import Split
    from teachset.generators import load_generator

    data, _ = setup
    whole = TeachingData(data.dataset, data.features, "pixels")
    train, _ = whole.split(Split())
    other, _ = whole.split(Split(split_seed=1))
    folder = save_generator(Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=2), tmp_path / "g",
                            extra={"dataset": other.dataset.record()})
    with pytest.raises(TeachsetError, match="trained on another train split"):
        make_method("latent", generator=load_generator(folder), epochs=1).make(train, per_class=1)
    same = save_generator(Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=2), tmp_path / "same",
                          extra={"dataset": train.dataset.record()})
    assert len(make_method("latent", generator=load_generator(same), epochs=1).make(train, per_class=1)) == 2


def test_an_ensemble_teacher_teaches_both_students_in_several_feature_spaces(setup):
    from teachset.evaluate import taught_students

    data, generator = setup
    method = make_method("latent", generator=generator, student="lc+nn", extractors=["alexnet"], views=1, epochs=12,
                         lr=0.2, l2=0.01)
    ts = method.make(data, per_class=2)
    assert ts.curve[-1]["outer_loss"] < ts.curve[0]["outer_loss"]
    assert taught_students(ts) == {(s, e) for s in ("lc", "nn") for e in ("pixels", "alexnet")}
    assert ts.params["extractors"] == ["alexnet"] and ts.params["views"] == 1
    with pytest.raises(OptionError, match="'student' must be one of"):
        make_method("latent", student="svm")


def test_the_teacher_can_start_from_the_real_images_a_selection_method_picks(setup):
    data, generator = setup
    from teachset.generators.invert import invert

    herding = make_method("herding").make(data, per_class=2)
    ts = make_method("latent", generator=generator, start="herding", epochs=1, lr=1e-9, extractors=[], views=0).make(data, per_class=2)
    inverted, _ = invert(generator, herding.tensor(), torch.from_numpy(herding.labels))
    np.testing.assert_allclose(ts.latents, inverted.numpy(), atol=1e-5)  # one tiny step from the inverted herding codes
    with pytest.raises(OptionError, match="'start' must be prior or a selection method"):
        make_method("latent", start="latent")


@pytest.mark.parametrize("options", [{"student": "lc", **PAPER}, {"student": "lc+nn", "views": 1, "extractors": [],
                                                                   "anchor_weight": 1.0, "start": "prior"}])
def test_sets_taught_together_equal_sets_taught_one_by_one(setup, options):
    data, generator = setup
    method = make_method("latent", generator=generator, epochs=6, lr=0.2, l2=0.01, **options)
    together = method.make_many(data, per_class=2, seeds=[0, 1, 2])
    for seed, batched in zip([0, 1, 2], together):
        alone = method.make(data, per_class=2, seed=seed)
        assert batched.seed == seed and np.abs(batched.images.astype(int) - alone.images).max() <= 1
        np.testing.assert_allclose(batched.latents, alone.latents, atol=1e-4)
        np.testing.assert_allclose([r["outer_loss"] for r in batched.curve], [r["outer_loss"] for r in alone.curve], rtol=1e-4)
    assert not np.array_equal(together[0].latents, together[1].latents)  # each set its own seed

import json

import numpy as np
import pytest
import torch

from teachset.cli import main
from teachset.data import load_dataset
from teachset.errors import TeachsetError
from teachset.evaluate import Evaluator
from teachset.features import build_extractor, dataset_features
from teachset.generators import save_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.methods.latent import teach_latent
from teachset.methods.pixels import teach_pixels
from teachset.methods.teacher import Teacher, TeacherOptions, snap_to_real
from teachset.methods import select_teaching_set


@pytest.fixture(scope="module")
def setup():
    dataset = load_dataset("digits", image_size=32)
    keep = np.flatnonzero(dataset.labels < 2)  # two classes: fast
    dataset.images, dataset.labels, dataset.ids = dataset.images[keep], dataset.labels[keep], [dataset.ids[i] for i in keep]
    dataset.class_names = ["0", "1"]
    features = dataset_features(dataset, "pixels", progress=False)
    torch.manual_seed(0)
    generator = Autoencoder(image_size=32, latent_dim=8, width=8, num_classes=2, class_names=["0", "1"])
    return dataset, features, generator


@pytest.mark.parametrize("student,hypergradient", [("lc", "implicit"), ("lc", "unrolled"), ("nn", "implicit")])
def test_latent_teacher_lowers_the_students_loss_and_keeps_g_frozen(setup, student, hypergradient, tmp_path):
    dataset, features, generator = setup
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    options = TeacherOptions(student=student, epochs=25, lr=0.2, hypergradient=hypergradient, l2=0.01, unrolled_lr=0.01)
    ts, curve = teach_latent(generator, dataset, features, options, per_class=2, extractor="pixels",
                             curve_path=tmp_path / "curve.jsonl", progress=False)
    assert curve[-1]["outer_loss"] < curve[0]["outer_loss"]
    assert len((tmp_path / "curve.jsonl").read_text().splitlines()) == 25
    assert ts.method == f"latent-{student}" and ts.latents.shape == (4, 8) and ts.images.shape == (4, 1, 32, 32)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert all(p.grad is None for p in generator.parameters())
    # the set regenerates from its codes
    regenerated = generator.generate(torch.from_numpy(ts.latents))
    assert np.abs(np.rint(regenerated.detach().numpy() * 255) - ts.images).max() <= 1


def test_warm_started_newton_reaches_the_same_student_as_a_reset_one(setup):
    from teachset.hypergrad import augment, newton

    dataset, features, generator = setup
    labels = torch.tensor([0, 0, 1, 1])
    z = generator.sample_latents(labels, torch.Generator().manual_seed(0))
    teacher = Teacher(z, lambda q: generator.generate(q, labels), labels, build_extractor("pixels"), features, dataset.labels,
                      TeacherOptions(epochs=5, lr=0.2, l2=0.01))
    for _ in range(5):
        teacher.step()
    with torch.no_grad():
        phi = augment(build_extractor("pixels")(generator.generate(teacher.params, labels)).double())
        # the student of the last step saw the codes before its update; compare on the codes it saw
        teacher.loss()
        reset = newton(phi, labels, teacher.theta0, 0.01)
    assert torch.allclose(teacher.theta, reset, atol=1e-7)


def test_pixel_teacher_and_snap_to_real(setup):
    dataset, features, _ = setup
    ts, curve = teach_pixels(dataset, features, TeacherOptions(student="lc", epochs=10, lr=0.1, l2=0.01), per_class=2,
                             extractor="pixels", progress=False)
    assert curve[-1]["outer_loss"] < curve[0]["outer_loss"] and ts.method == "pixels-lc"
    snapped = snap_to_real(ts, dataset, features, build_extractor("pixels"))
    assert snapped.method == "pixels-lc-snapped" and len(set(snapped.source_ids)) == 4
    assert np.array_equal(snapped.labels, ts.labels)
    assert Evaluator(dataset, features, "pixels").evaluate(snapped, repeats=1)[0]["n_test"] == len(dataset) - 4


def test_teacher_starts_from_a_selected_set_by_inverting_it(setup):
    dataset, features, generator = setup
    start = select_teaching_set("kcenters", dataset, features, per_class=2)
    ts, _ = teach_latent(generator, dataset, features, TeacherOptions(student="nn", epochs=2), extractor="pixels",
                         init_set=start, progress=False)
    assert np.array_equal(ts.labels, start.labels) and "teaching set" in ts.params["init"]


def test_mismatched_generator_is_refused(setup):
    dataset, features, _ = setup
    with pytest.raises(TeachsetError, match="load the dataset with --size 64"):
        teach_latent(Autoencoder(image_size=64, num_classes=2), dataset, features, TeacherOptions(epochs=1), extractor="pixels")
    with pytest.raises(TeachsetError, match="l2 > 0"):
        TeacherOptions(l2=0).check()


def test_teach_command_writes_set_curve_and_snapped_set(setup, tmp_path, capsys):
    _, _, generator = setup
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

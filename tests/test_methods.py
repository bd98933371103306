"""Common tests run against every selection method (as scikit-learn's estimator checks), then each method's own property."""

import numpy as np
import pytest

import torch

from teachset.errors import OptionError, TeachsetError
from teachset.generators import save_generator
from teachset.generators.autoencoder import Autoencoder
from teachset.gtn import GTNOptions, GTNTrainer
from teachset.gtn.artifacts import save_checkpoint
from teachset.methods import METHODS, TeachingData, make_method
from teachset.seeded import seeded_init
from teachset.distances import sq_distances
from teachset.methods.forgetting import forgetting_counts
from teachset.teaching_set import TeachingSet


@pytest.fixture(scope="module")
def digit_data(digits16):
    return TeachingData(digits16, digits16.tensor().flatten(1).numpy(), "pixels")


@pytest.fixture(scope="module")
def digit_features(digit_data):
    return digit_data.features


@pytest.fixture(scope="module")
def method_params(digits16, tmp_path_factory):
    """Parameters that make every registered method run in a second on the 16 px digits:
    an (untrained) generator checkpoint for the latent teacher, a GTN checkpoint for gtn."""
    folder = tmp_path_factory.mktemp("method-assets")
    generator = seeded_init(Autoencoder(image_size=16, latent_dim=16, width=8, num_classes=10), torch.Generator().manual_seed(0))
    save_generator(generator, folder / "generator")
    options = GTNOptions(inner_steps=2, batch_size=30, outer_steps=1, eval_every=0)
    trainer = GTNTrainer(options).fit(digits16.tensor(), torch.from_numpy(digits16.labels))
    save_checkpoint(trainer, folder / "gtn", digits16.record(), digits16.class_names)
    teacher = {"epochs": 2, "lr": 0.1, "extractors": [], "views": 1}  # one feature space: the checks are about the interface
    return {"latent": {"generator": str(folder / "generator"), "start": "prior", **teacher}, "pixels": teacher,
            "gtn": {"checkpoint": str(folder / "gtn")}}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_makes_a_balanced_deterministic_teaching_set(name, digit_data, method_params, tmp_path):
    """The common checks every registered method passes (as scikit-learn's estimator checks)."""
    method = make_method(name, **method_params.get(name, {}))
    ts = method.make(digit_data, per_class=3, seed=7)
    assert np.array_equal(np.bincount(ts.labels), np.full(10, 3))
    assert ts.images.shape == (30, 1, 16, 16) and ts.seed == 7 and ts.method.startswith(name)
    assert ts.params["per_class"] == 3 and ts.params["extractor"] == "pixels"
    assert ts.dataset["fingerprint"] == digit_data.dataset.fingerprint
    again = method.make(digit_data, per_class=3, seed=7)
    assert np.array_equal(again.images, ts.images) and np.array_equal(again.labels, ts.labels)
    if method.kind == "selection":
        assert len(set(ts.source_ids)) == 30
        index = [digit_data.dataset.ids.index(i) for i in ts.source_ids]
        assert np.array_equal(digit_data.dataset.labels[index], ts.labels)
        assert np.array_equal(digit_data.dataset.images[index], ts.images)
    loaded = TeachingSet.load(ts.save(tmp_path / name))
    assert np.array_equal(loaded.images, ts.images) and np.array_equal(loaded.labels, ts.labels)
    assert loaded.source_ids == ts.source_ids and loaded.curve == ts.curve and loaded.params == ts.params


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_refuses_more_than_a_class_has(name, digit_data, method_params):
    with pytest.raises(TeachsetError, match="fewer than the 200 per class"):
        make_method(name, **method_params.get(name, {})).make(digit_data, per_class=200)


def test_unknown_method_and_parameter_are_named():
    with pytest.raises(TeachsetError, match="unknown teaching method 'coreset'"):
        make_method("coreset")
    with pytest.raises(OptionError, match="no parameter 'depth'.*order"):
        make_method("forgetting", depth=3)
    with pytest.raises(OptionError, match="'order' must be one of most, least"):
        make_method("forgetting", order="sometimes")
    assert make_method("forgetting", epochs="5").epochs == 5  # text values (--param, TOML) become the field's type


def select(name, data, per_class, seed=0):
    return make_method(name).make(data, per_class, seed)


def _coverage(points, chosen):
    return sq_distances(points, points[chosen]).min(1).max()


def test_kcenters_covers_each_class_better_than_random(digits16, digit_data, digit_features):
    kc, rnd = select("kcenters", digit_data, 5), select("random", digit_data, 5)
    members = np.flatnonzero(digits16.labels == 3)
    pts = digit_features[members]
    pick = lambda ts: [list(members).index(digits16.ids.index(i)) for i, y in zip(ts.source_ids, ts.labels) if y == 3]
    assert _coverage(pts, pick(kc)) < _coverage(pts, pick(rnd))


def test_forgetting_counts_never_learned_examples_as_most_forgotten():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 2
    X = np.where(y[:, None] == 1, 3.0, -3.0) + rng.normal(size=(200, 4))
    flipped = np.array([0, 1, 2, 3])  # points that sit deep in the other class: never learned
    y_noisy = y.copy()
    y_noisy[flipped] = 1 - y_noisy[flipped]
    counts = forgetting_counts(X, y_noisy, epochs=5, batch_size=16, lr=0.1, rng=np.random.default_rng(0))
    # mislabeled points are forgotten the most; those never once right count as infinitely forgotten
    assert counts[flipped].min() > np.delete(counts, flipped).max()
    assert np.isinf(counts[flipped]).sum() >= 2 and np.isfinite(np.delete(counts, flipped)).all()
    chosen = make_method("forgetting", epochs=5, lr=0.1, batch_size=16).select(X, y_noisy, 2, np.random.default_rng(0))
    assert set(chosen) == set(flipped)
    least = make_method("forgetting", order="least", epochs=5, lr=0.1, batch_size=16).select(X, y_noisy, 2, np.random.default_rng(0))
    assert not set(least) & set(flipped)


def test_herding_matches_the_class_mean_better_than_random(digits16, digit_data, digit_features):
    hd = select("herding", digit_data, 5)
    for c in range(3):
        members = np.flatnonzero(digits16.labels == c)
        mean = digit_features[members].mean(0)
        chosen = [digits16.ids.index(i) for i, y in zip(hd.source_ids, hd.labels) if y == c]
        rng = np.random.default_rng(c)
        random_gaps = [np.linalg.norm(digit_features[rng.choice(members, 5, replace=False)].mean(0) - mean) for _ in range(50)]
        assert np.linalg.norm(digit_features[chosen].mean(0) - mean) < np.percentile(random_gaps, 10)


def test_medoids_find_one_typical_member_per_mode():
    rng = np.random.default_rng(0)
    modes = np.array([[0, 0], [10, 0], [0, 10]], float)
    X = np.concatenate([m + rng.normal(size=(30, 2)) for m in modes] * 2)
    y = np.repeat([0, 1], 90)
    chosen = make_method("medoids").select(X, y, 3, np.random.default_rng(1))
    for c in (0, 1):
        picked = X[chosen[y[chosen] == c]]
        nearest_mode = sq_distances(picked, modes).argmin(1)
        assert sorted(nearest_mode) == [0, 1, 2]
        assert (sq_distances(picked, modes).min(1) < 2.0).all()


def test_medoids_and_herding_on_large_classes_use_a_sample_and_stay_close_to_exact(monkeypatch):
    from teachset.methods import herding, medoids

    rng = np.random.default_rng(0)
    modes = np.array([[0, 0], [8, 0], [0, 8]], float)
    X = np.concatenate([m + rng.normal(size=(400, 2)) for m in modes])
    exact_m, exact_h = medoids.k_medoids(X, 3, np.random.default_rng(1)), herding.kernel_herding(X, 6, np.random.default_rng(1))
    monkeypatch.setattr(medoids, "SAMPLE", 300)  # the same data is now a "large" class
    monkeypatch.setattr(herding, "SAMPLE", 300)
    sampled_m, sampled_h = medoids.k_medoids(X, 3, np.random.default_rng(1)), herding.kernel_herding(X, 6, np.random.default_rng(1))
    cost = lambda chosen: np.sqrt(sq_distances(X, X[chosen])).min(1).sum()  # noqa: E731
    assert cost(sampled_m) <= 1.02 * cost(exact_m)  # the same modes, each near its centre
    mode_of = lambda chosen: sorted(sq_distances(X[chosen], modes).argmin(1).tolist())  # noqa: E731
    assert mode_of(sampled_h) == mode_of(exact_h) == [0, 0, 1, 1, 2, 2]  # two per mode, as the exact method
    gap = lambda chosen: np.linalg.norm(X[chosen].mean(0) - X.mean(0))  # noqa: E731
    assert gap(sampled_h) <= gap(exact_h) + 0.3

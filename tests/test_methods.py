"""Common tests run against every selection method (as scikit-learn's estimator checks), then each method's own property."""

import numpy as np
import pytest

from teachset.errors import TeachsetError
from teachset.methods import METHODS, make_method, select_teaching_set
from teachset.methods.base import sq_distances
from teachset.methods.forgetting import forgetting_counts
from teachset.teaching_set import TeachingSet


@pytest.fixture(scope="module")
def digit_features(digits16):
    return digits16.tensor().flatten(1).numpy()


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_class_balanced_unique_and_deterministic(name, digits16, digit_features, tmp_path):
    ts = select_teaching_set(name, digits16, digit_features, per_class=3, seed=7)
    assert np.array_equal(np.bincount(ts.labels), np.full(10, 3))
    assert len(set(ts.source_ids)) == 30
    again = select_teaching_set(name, digits16, digit_features, per_class=3, seed=7)
    assert again.source_ids == ts.source_ids
    index = [digits16.ids.index(i) for i in ts.source_ids]
    assert np.array_equal(digits16.labels[index], ts.labels) and np.array_equal(digits16.images[index], ts.images)
    assert ts.params["per_class"] == 3 and ts.method == name and ts.seed == 7
    assert ts.dataset["fingerprint"] == digits16.fingerprint
    loaded = TeachingSet.load(ts.save(tmp_path / name))
    assert loaded.source_ids == ts.source_ids and np.array_equal(loaded.images, ts.images)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_refuses_more_than_a_class_has(name, digits16, digit_features):
    with pytest.raises(TeachsetError, match="fewer than the 200 per class"):
        select_teaching_set(name, digits16, digit_features, per_class=200)


def test_unknown_method_and_parameter_are_named():
    with pytest.raises(TeachsetError, match="unknown selection method 'coreset'"):
        make_method("coreset")
    with pytest.raises(TeachsetError, match="no parameter.*'depth'.*order"):
        make_method("forgetting", depth=3)


def _coverage(points, chosen):
    return sq_distances(points, points[chosen]).min(1).max()


def test_kcenters_covers_each_class_better_than_random(digits16, digit_features):
    kc = select_teaching_set("kcenters", digits16, digit_features, per_class=5, seed=0)
    rnd = select_teaching_set("random", digits16, digit_features, per_class=5, seed=0)
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


def test_herding_matches_the_class_mean_better_than_random(digits16, digit_features):
    hd = select_teaching_set("herding", digits16, digit_features, per_class=5)
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

import numpy as np
import pytest
from scipy import stats

from teachset.errors import TeachsetError
from teachset.evaluate import Evaluator, held_out_index, interval, proxy_accuracy, summarize
from teachset.methods import TeachingData, make_method


@pytest.fixture(scope="module")
def evaluator(digits16):
    return Evaluator(TeachingData.load(digits16, "pixels", progress=False))


def select_teaching_set(name, evaluator, per_class, seed=0):
    return make_method(name).make(evaluator.data, per_class, seed)


def test_rows_per_student_and_repeat_with_teaching_images_removed(digits16, evaluator):
    ts = select_teaching_set("random", evaluator, per_class=2)
    rows = evaluator.evaluate(ts, repeats=3, seed=10)
    assert [(r["student"], r["student_seed"]) for r in rows] == [("lc", 10), ("lc", 11), ("lc", 12), ("nn", 10), ("nn", 11), ("nn", 12)]
    assert all(r["n_test"] == len(digits16) - 20 for r in rows)
    held = held_out_index(ts, digits16)
    assert not set(np.array(digits16.ids)[held]) & set(ts.source_ids)
    assert all(0.5 < r["accuracy"] <= 1 for r in rows)  # two digits per class already teach pixels-space students


def test_teaching_set_from_another_dataset_is_refused(digits16, evaluator):
    ts = select_teaching_set("random", evaluator, per_class=1)
    ts.dataset = {**ts.dataset, "fingerprint": "0000"}
    with pytest.raises(TeachsetError, match="made from dataset 0000"):
        evaluator.evaluate(ts)


def test_interval_is_the_student_t_interval():
    values = [0.6, 0.7, 0.65, 0.72, 0.68]
    got = interval(values)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert got["n"] == 5 and np.isclose(got["ci_low"], low) and np.isclose(got["ci_high"], high)
    assert interval([0.5])["ci_low"] is None
    rows = [{"method": m, "student": s, "accuracy": a} for m, s, a in [("a", "lc", 0.1), ("a", "lc", 0.3), ("b", "nn", 1.0)]]
    assert [(r["method"], r["student"], r["mean"]) for r in summarize(rows)] == [("a", "lc", 0.2), ("b", "nn", 1.0)]


def test_proxy_accuracy_on_given_test_images(digits16, evaluator):
    ts = select_teaching_set("kcenters", evaluator, per_class=2)
    test_index = held_out_index(ts, digits16)[:100]
    got = proxy_accuracy(ts, digits16, test_index, extractor="pixels", repeats=2)
    assert set(got) == {"lc", "nn"} and all(0.5 < v <= 1 for v in got.values())


def test_evaluation_parts_share_one_copy_of_each_part_and_read_features_from_the_cache(digits16):
    from teachset.data.splits import Split
    from teachset.evaluate import evaluation_parts

    train, evaluator, realism = evaluation_parts(digits16, Split(), "pixels", transfer=("pixels",), progress=False,
                                                 realism_extractor="pixels")
    assert realism.train is train and realism.test is evaluator.data is evaluator.transfer[0]  # one space, loaded once
    again = TeachingData.load(digits16, "pixels", progress=False).features  # cached by the call above: memory-mapped
    assert isinstance(again, np.memmap) and again.flags.writeable and len(train.dataset) + len(evaluator.data.dataset) == len(digits16)


def test_distances_over_blocks_of_rows_equal_one_matrix(monkeypatch):
    from teachset import distances

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(23, 5)).astype(np.float32)
    direct = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    monkeypatch.setattr(distances, "BLOCK", 10)  # three blocks, the last one short
    assert np.allclose(distances.sq_distances(a, b), direct) and distances.sq_distances(a, b).dtype == np.float64


def test_realism_neighbour_distances_in_chunks_equal_the_whole_matrix(monkeypatch):
    from types import SimpleNamespace

    from teachset import realism
    from teachset.distances import sq_distances

    rng = np.random.default_rng(0)
    train = SimpleNamespace(features=rng.normal(size=(300, 8)), dataset=SimpleNamespace(ids=[f"i{i}" for i in range(300)]))
    scorer = realism.Realism.__new__(realism.Realism)
    scorer.train = train
    monkeypatch.setattr(realism, "ROWS", 64)  # several chunks, the last one short
    features = np.concatenate([train.features[:100], rng.normal(size=(130, 8))])
    exclude = [f"i{i}" for i in range(100)] + [None] * 130  # the first 100 are train images: their own copy left out
    whole = np.sqrt(sq_distances(features, train.features))
    whole[np.arange(100), np.arange(100)] = np.inf
    assert np.allclose(scorer._neighbour_distances(features, exclude), np.sort(whole, axis=1)[:, : realism.NEIGHBOURS])

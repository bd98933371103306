import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

from teachset.students import LinearStudent, PrototypeStudent, class_scores


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 12)) * 2
    y = np.arange(45) % 3
    return centers[y] + rng.normal(size=(45, 12)), y


def test_lc_reaches_sklearn_logistic_regression_optimum_multiclass(blobs):
    X, y = blobs
    l2 = 0.05
    student = LinearStudent(l2=l2, epochs=200).fit(X, y)
    Xa = np.hstack([X, np.ones((len(X), 1))])  # our bias is penalised like a weight
    ref = LogisticRegression(C=1 / (len(X) * l2), fit_intercept=False, tol=1e-10, max_iter=10_000).fit(Xa, y)
    np.testing.assert_allclose(student.predict_proba(X), ref.predict_proba(Xa), atol=1e-5)


def test_lc_binary_matches_sklearn_with_its_halved_penalty(blobs):
    X, y = blobs
    X, y = X[y < 2], y[y < 2]
    l2 = 0.05
    student = LinearStudent(l2=l2).fit(X, y)  # the default 50 epochs suffice on a teaching-set-sized problem
    Xa = np.hstack([X, np.ones((len(X), 1))])
    # softmax over two classes with l2 on both rows == logistic regression with l2/2 on their difference
    ref = LogisticRegression(C=2 / (len(X) * l2), fit_intercept=False, tol=1e-10, max_iter=10_000).fit(Xa, y)
    np.testing.assert_allclose(student.predict_proba(X), ref.predict_proba(Xa), atol=1e-4)


def test_lc_first_order_optimisers_depend_on_the_seed(blobs):
    X, y = blobs
    a = LinearStudent(optimizer="adam", random_state=0, epochs=5).fit(X, y)
    b = LinearStudent(optimizer="adam", random_state=1, epochs=5).fit(X, y)
    c = LinearStudent(optimizer="adam", random_state=0, epochs=5).fit(X, y)
    assert not np.allclose(a.coef_, b.coef_) and np.array_equal(a.coef_, c.coef_)
    assert LinearStudent(optimizer="sgd", epochs=100).fit(X, y).score(X, y) > 0.9


def test_nn_mean_rule_is_nearest_centroid(blobs):
    X, y = blobs
    teach, test = slice(0, 15), slice(15, None)
    ours = PrototypeStudent(similarity="euclidean", rule="mean").fit(X[teach], y[teach]).predict(X[test])
    assert np.array_equal(ours, NearestCentroid().fit(X[teach], y[teach]).predict(X[test]))


def test_nn_max_rule_is_one_nearest_neighbour(blobs):
    X, y = blobs
    teach, test = slice(0, 9), slice(9, None)
    for similarity, metric in (("euclidean", "euclidean"), ("cosine", "cosine")):
        ours = PrototypeStudent(similarity=similarity, rule="max").fit(X[teach], y[teach]).predict(X[test])
        ref = KNeighborsClassifier(1, metric=metric).fit(X[teach], y[teach]).predict(X[test])
        assert np.array_equal(ours, ref)


def test_nn_logsumexp_tends_to_nearest_prototype_and_is_differentiable(blobs):
    X, y = blobs
    P, Py = torch.tensor(X[:9]), torch.tensor(y[:9])
    Q = torch.tensor(X[9:], requires_grad=True)
    soft = class_scores(Q, P, Py, 3, temperature=1e-4)
    hard = class_scores(Q, P, Py, 3, temperature=1e-4, rule="max")
    assert torch.equal(soft.argmax(1), hard.argmax(1))
    class_scores(Q, P, Py, 3).logsumexp(1).sum().backward()
    assert Q.grad.abs().sum() > 0

"""The LC hypergradient against references: dense Hessians, finite differences, and unrolling to convergence."""

import pytest
import torch

from teachset.hypergrad import (LCHessian, augment, implicit_surrogate, inner_grad, inner_loss, newton,
                                outer_loss_and_grad, unrolled_theta)

F64 = {"dtype": torch.float64}


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    b, d, C, N = 6, 5, 3, 40
    phi = augment(torch.randn(b, d, generator=g, **F64))
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    data = augment(torch.randn(N, d, generator=g, **F64))
    labels = torch.randint(0, C, (N,), generator=g)
    theta0 = 0.1 * torch.randn(C, d + 1, generator=g, **F64)
    return phi, y, data, labels, theta0, 0.05


def test_newton_reaches_the_optimum(problem):
    phi, y, _, _, theta0, l2 = problem
    theta = newton(phi, y, theta0, l2)
    assert inner_grad(theta, phi, y, l2).norm() < 1e-10
    autograd = torch.func.grad(lambda t: inner_loss(t, phi, y, l2))(theta)
    assert torch.allclose(autograd, inner_grad(theta, phi, y, l2), atol=1e-12)


@pytest.mark.parametrize("solver", ["solve", "solve_cg"])
def test_low_rank_solves_are_exact_against_the_dense_hessian(problem, solver):
    phi, y, _, _, theta0, l2 = problem
    theta = newton(phi, y, theta0, l2)
    dense = torch.autograd.functional.hessian(lambda t: inner_loss(t, phi, y, l2), theta).reshape(theta.numel(), -1)
    g = torch.randn(theta.shape, **F64)
    H = LCHessian(theta, phi, l2)
    assert torch.allclose(H.matvec(g).flatten(), dense @ g.flatten(), atol=1e-12)
    expected = torch.linalg.solve(dense, g.flatten()).reshape(theta.shape)
    assert torch.allclose(getattr(H, solver)(g), expected, atol=1e-8)


def test_truncated_neumann_converges_slowly_along_small_eigenvalues(problem):
    phi, y, _, _, theta0, l2 = problem
    theta = newton(phi, y, theta0, l2)
    H = LCHessian(theta, phi, l2)
    g = torch.randn(theta.shape, **F64)
    exact = H.solve(g)
    err = lambda k: ((H.solve_neumann(g, k) - exact).norm() / exact.norm()).item()
    assert err(50) > 0.1 and err(2000) < err(50)  # far off after the usual 50 terms


def _outer(phi_features, problem):
    phi, y, data, labels, theta0, l2 = problem
    theta = newton(augment(phi_features), y, theta0, l2, max_iter=100, tol=1e-14)
    return outer_loss_and_grad(theta, data, labels)[0]


def _implicit_gradient(problem):
    phi, y, data, labels, theta0, l2 = problem
    features = phi[:, :-1].clone().requires_grad_(True)
    theta = newton(augment(features).detach(), y, theta0, l2)
    _, g, _ = outer_loss_and_grad(theta, data, labels)
    implicit_surrogate(augment(features), y, theta, g, l2).backward()
    return features.grad


def test_implicit_hypergradient_matches_finite_differences(problem):
    features = problem[0][:, :-1]
    grad = _implicit_gradient(problem)
    rng = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = torch.randn(features.shape, generator=rng, **F64)
        eps = 1e-5
        fd = (_outer(features + eps * direction, problem) - _outer(features - eps * direction, problem)) / (2 * eps)
        analytic = (grad * direction).sum()
        assert abs(fd - analytic) / abs(fd) < 1e-6


def test_implicit_hypergradient_agrees_with_unrolling_to_convergence(problem):
    phi, y, data, labels, theta0, l2 = problem
    features = phi[:, :-1].clone().requires_grad_(True)
    theta = unrolled_theta(augment(features), y, theta0, l2, steps=3000, lr=0.5)
    outer_loss_and_grad_value = torch.nn.functional.cross_entropy(data @ theta.T, labels)
    outer_loss_and_grad_value.backward()
    implicit = _implicit_gradient(problem)
    cosine = torch.nn.functional.cosine_similarity(implicit.flatten(), features.grad.flatten(), dim=0)
    assert cosine > 0.9999

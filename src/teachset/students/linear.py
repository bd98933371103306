"""The LC student (paper eq. 3): a linear softmax layer on frozen features.

Training minimises, over W (C x d) and b (C),

    mean_i CE(W f_i + b, y_i) + l2 / 2 * (||W||^2 + ||b||^2)

full-batch, for `epochs` iterations, from a seeded random init (PyTorch's nn.Linear init).
The bias is penalised with the weights, so for l2 > 0 the problem is strongly convex and its
optimum unique. The default optimiser, Newton's method with the exact low-rank Hessian solve of
`teachset.hypergrad` (one epoch = one full-batch Newton step, stopping early once converged),
reaches that optimum in about a dozen epochs; it is the point the latent teacher's implicit
gradient assumes, so the evaluation student and the teacher's student are the same learner.
L-BFGS reaches the same optimum; Adam and SGD are there for the paper's first-order setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import defaults
from ..errors import TeachsetError
from .base import ClassScoreStudent

OPTIMIZERS = ("newton", "lbfgs", "adam", "sgd")
DEFAULT_LR = {"newton": 1.0, "lbfgs": 1.0, "adam": 0.01, "sgd": 0.1}


def init_linear(d: int, num_classes: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear's init, U(-1/sqrt(d), 1/sqrt(d)), from a seed."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(d)
    W = (torch.rand(num_classes, d, generator=g, dtype=dtype) * 2 - 1) * bound
    b = (torch.rand(num_classes, generator=g, dtype=dtype) * 2 - 1) * bound
    return W, b


def linear_objective(W, b, features, labels, l2: float) -> torch.Tensor:
    """Mean cross-entropy plus l2 / 2 * (||W||^2 + ||b||^2)."""
    loss = F.cross_entropy(features @ W.T + b, labels)
    return loss + 0.5 * l2 * (W.pow(2).sum() + b.pow(2).sum()) if l2 else loss


def train_linear(features: torch.Tensor, labels: torch.Tensor, W0: torch.Tensor, b0: torch.Tensor, *,
                 epochs: int, l2: float, optimizer: str = "lbfgs", lr: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch training of the LC head from (W0, b0); returns the trained (W, b), detached."""
    if optimizer not in OPTIMIZERS:
        raise TeachsetError(f"unknown LC optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    features, labels = features.detach().to(W0.dtype), labels.detach()
    if optimizer == "newton":
        from ..hypergrad import augment, newton

        theta = newton(augment(features), labels, torch.cat([W0, b0[:, None]], dim=1), l2, max_iter=epochs)
        return theta[:, :-1].contiguous(), theta[:, -1].contiguous()
    W, b = W0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([W, b], lr=lr, max_iter=epochs, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            loss = linear_objective(W, b, features, labels, l2)
            loss.backward()
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam([W, b], lr=lr) if optimizer == "adam" else torch.optim.SGD([W, b], lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            linear_objective(W, b, features, labels, l2).backward()
            opt.step()
    return W.detach(), b.detach()


@dataclass
class LinearStudent(ClassScoreStudent):
    """LC student. `fit` returns self; learned `coef_` (C, d) and `intercept_` (C,)."""

    epochs: int = defaults.LC_EPOCHS
    l2: float = defaults.LC_L2
    optimizer: str = "newton"
    lr: float | None = None
    random_state: int = 0

    def fit(self, features, labels, num_classes: int | None = None) -> "LinearStudent":
        X = torch.as_tensor(np.asarray(features), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.num_classes_ = int(num_classes or int(y.max()) + 1)
        W0, b0 = init_linear(X.shape[1], self.num_classes_, self.random_state)
        W, b = train_linear(X, y, W0, b0, epochs=self.epochs, l2=self.l2, optimizer=self.optimizer, lr=self.lr)
        self.coef_, self.intercept_ = W.numpy(), b.numpy()
        return self

    def decision_function(self, features) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.coef_.T + self.intercept_

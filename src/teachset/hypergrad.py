"""Hypergradients of the LC student: d outer_loss / d teaching features, through the student's training.

The LC inner problem on teaching features Phi (b x d), labels y, with theta = [W | bias] (C x D,
D = d + 1, features augmented with a constant 1):

    L_in(theta, Phi) = 1/b sum_i CE(theta phi_i, y_i) + l2/2 ||theta||^2      (strongly convex)

At its optimum theta*, the implicit function theorem (Lorraine et al. 2019) gives

    d L_out / d Phi = - (d^2 L_in / d Phi d theta)^T  H^-1  g,    g = d L_out / d theta,  H = d^2 L_in / d theta^2.

H = l2 I + J^T S J, where J maps theta to the b x C logits and S = blockdiag(diag(p_i) - p_i p_i^T) / b,
so its data term has rank at most b * C. Woodbury (push-through form, no inverse of the singular S):

    H^-1 = 1/l2 (I - J^T (l2 I + S J J^T)^-1 S J),   J J^T = (Phi Phi^T) kron I_C,

an exact solve of a (bC x bC) system: milliseconds. Also here: conjugate gradients on the same
Hessian-vector product (exact in at most C*D steps, cheap when bC is large), a truncated Neumann
series (Lorraine et al.'s choice, kept for comparison: it converges slowly along the Hessian's
small eigenvalues, which are exactly the l2-only directions that the teaching examples do not
span and the ones that matter), Newton's method for the inner problem itself (the same solve), and
unrolled differentiation through E steps of gradient descent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import TeachsetError

SOLVERS = ("woodbury", "cg", "neumann")


def augment(features: torch.Tensor) -> torch.Tensor:
    """[features, 1]: the bias is a weight on a constant feature (and penalised like one)."""
    return torch.cat([features, features.new_ones(len(features), 1)], dim=1)


def inner_loss(theta: torch.Tensor, phi: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """L_in; phi already augmented."""
    return F.cross_entropy(phi @ theta.T, y) + 0.5 * l2 * theta.pow(2).sum()


def inner_grad(theta: torch.Tensor, phi: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """d L_in / d theta in closed form, (C x D); differentiable in phi."""
    p = torch.softmax(phi @ theta.T, dim=1)
    return (p - F.one_hot(y, theta.shape[0]).to(p.dtype)).T @ phi / len(phi) + l2 * theta


class LCHessian:
    """The Hessian of L_in at theta, as an operator and an exact inverse."""

    def __init__(self, theta: torch.Tensor, phi: torch.Tensor, l2: float):
        if l2 <= 0:
            raise TeachsetError("the LC hypergradient needs l2 > 0: without it the inner problem has no unique optimum")
        self.phi, self.l2 = phi, l2
        self.b, self.C = len(phi), theta.shape[0]
        p = torch.softmax(phi @ theta.T, dim=1)
        self.S = (torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)) / self.b  # (b, C, C)

    def _J(self, v: torch.Tensor) -> torch.Tensor:  # (C, D) -> (b, C)
        return self.phi @ v.T

    def _Jt(self, u: torch.Tensor) -> torch.Tensor:  # (b, C) -> (C, D)
        return u.T @ self.phi

    def _S(self, u: torch.Tensor) -> torch.Tensor:  # (b, C) -> (b, C)
        return torch.einsum("icd,id->ic", self.S, u)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.l2 * v + self._Jt(self._S(self._J(v)))

    def solve(self, g: torch.Tensor) -> torch.Tensor:
        """H^-1 g, exact (Woodbury)."""
        b, C = self.b, self.C
        K = self.phi @ self.phi.T  # (b, b)
        # M[(i,c),(j,e)] = l2 delta + S_i[c,e] K[i,j]
        M = torch.einsum("ice,ij->icje", self.S, K).reshape(b * C, b * C)
        M = M + self.l2 * torch.eye(b * C, dtype=M.dtype)
        w = torch.linalg.solve(M, self._S(self._J(g)).reshape(-1)).reshape(b, C)
        return (g - self._Jt(w)) / self.l2

    def solve_cg(self, g: torch.Tensor, tol: float = 1e-10, max_iter: int | None = None) -> torch.Tensor:
        x = torch.zeros_like(g)
        r = g.clone()
        p = r.clone()
        rr = (r * r).sum()
        for _ in range(max_iter or g.numel()):
            if rr.sqrt() <= tol * g.norm():
                break
            Hp = self.matvec(p)
            alpha = rr / (p * Hp).sum()
            x, r = x + alpha * p, r - alpha * Hp
            rr_new = (r * r).sum()
            p, rr = r + (rr_new / rr) * p, rr_new
        return x

    def solve_neumann(self, g: torch.Tensor, terms: int = 50) -> torch.Tensor:
        """alpha * sum_k (I - alpha H)^k g with alpha = 1 / (an upper bound of H's largest eigenvalue)."""
        alpha = 1.0 / (self.l2 + torch.linalg.matrix_norm(self.phi, 2).pow(2) / (2 * self.b))
        term, total = g.clone(), g.clone()
        for _ in range(terms):
            term = term - alpha * self.matvec(term)
            total = total + term
        return alpha * total


def newton(phi: torch.Tensor, y: torch.Tensor, theta0: torch.Tensor, l2: float, max_iter: int = 50, tol: float = 1e-10) -> torch.Tensor:
    """The optimum of L_in by damped Newton steps with the exact Woodbury solve; phi augmented, no grad."""
    theta = theta0.clone()
    loss = inner_loss(theta, phi, y, l2)
    for _ in range(max_iter):
        grad = inner_grad(theta, phi, y, l2)
        if grad.norm() <= tol * (1 + theta.norm()):
            break
        step = LCHessian(theta, phi, l2).solve(grad)
        t = 1.0
        while True:  # backtracking: Newton steps from a far-off start can overshoot
            candidate = theta - t * step
            new_loss = inner_loss(candidate, phi, y, l2)
            if new_loss <= loss - 1e-4 * t * (grad * step).sum() or t < 1e-8:
                break
            t *= 0.5
        theta, loss = candidate, new_loss
    return theta


def outer_loss_and_grad(theta: torch.Tensor, data: torch.Tensor, labels: torch.Tensor,
                        class_sums: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean CE of the student on the dataset (data augmented), its gradient in theta, and the predictions.

    The gradient is (P^T data - Y^T data) / N; Y^T data (`class_sums`) does not change while the
    dataset does not, so a caller that scores many students on one dataset passes it in."""
    logits = data @ theta.T
    log_p = torch.log_softmax(logits, dim=1)
    loss = -log_p.gather(1, labels[:, None]).mean()
    if class_sums is None:
        class_sums = F.one_hot(labels, theta.shape[0]).to(data.dtype).T @ data
    grad = (log_p.exp().T @ data - class_sums) / len(data)
    return loss, grad, logits.argmax(1)


def implicit_surrogate(phi: torch.Tensor, y: torch.Tensor, theta: torch.Tensor, g: torch.Tensor, l2: float,
                       solver: str = "woodbury", neumann_terms: int = 50) -> torch.Tensor:
    """A scalar whose gradient in phi (augmented, carrying the graph) is the IFT hypergradient:
    -<d L_in/d theta (theta*, phi), H^-1 g>, with theta* and H^-1 g held constant."""
    if solver not in SOLVERS:
        raise TeachsetError(f"unknown hypergradient solver '{solver}'; choose one of {', '.join(SOLVERS)}")
    with torch.no_grad():
        H = LCHessian(theta, phi.detach(), l2)
        v = H.solve(g) if solver == "woodbury" else H.solve_cg(g) if solver == "cg" else H.solve_neumann(g, neumann_terms)
    return -(inner_grad(theta, phi, y, l2) * v).sum()


def unrolled_theta(phi: torch.Tensor, y: torch.Tensor, theta0: torch.Tensor, l2: float, steps: int, lr: float) -> torch.Tensor:
    """theta after `steps` of full-batch gradient descent on L_in, differentiable in phi (unrolled)."""
    theta = theta0
    for _ in range(steps):
        theta = theta - lr * inner_grad(theta, phi, y, l2)
    return theta

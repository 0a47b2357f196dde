"""Multinomial logistic regression for many small tasks at once (the few-shot linear probe).

Minimises, per task, exactly scikit-learn's objective ``Σ_i CE(W x_i + b, y_i) + ‖W‖²/(2C)`` with an
unpenalised intercept. Why fast: the optimal W lies in the row span of the task's n support features
(representer theorem), so with the support Gram matrix ``X Xᵀ = U S Uᵀ`` the problem becomes an
ordinary penalised logistic regression on the n-dimensional coordinates ``Z = U S^{1/2}`` (``‖W‖ = ‖B‖``
because the basis is orthonormal). All tasks are then solved together by one batched L-BFGS in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: L-BFGS history length; 10 is the usual choice and plenty for these well-conditioned problems.
HISTORY = 10
#: Convergence: max |∂f/∂θ| of the per-sample-averaged objective (scikit-learn's scaling) below this.
DEFAULT_TOL = 1e-8


@dataclass(frozen=True)
class BatchedLogReg:
    """Fitted weights for T tasks: ``weight`` (T, k, d), ``bias`` (T, k), iterations used, converged mask."""

    weight: torch.Tensor
    bias: torch.Tensor
    iterations: int
    converged: torch.Tensor

    def decision_function(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (T, m, k) for query features ``x`` (T, m, d)."""
        x = x.to(self.weight)
        return torch.bmm(x, self.weight.transpose(1, 2)) + self.bias[:, None, :]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels (T, m)."""
        return self.decision_function(x).argmax(dim=-1)


def _objective(theta: torch.Tensor, z: torch.Tensor, onehot: torch.Tensor, inv_c: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy + ‖B‖²/(2C) and its gradient, per task; theta = [B (k×r) | b (k)]."""
    t, n, r = z.shape
    k = onehot.shape[-1]
    b_mat = theta[:, : k * r].view(t, k, r)
    bias = theta[:, k * r:]
    logits = torch.bmm(z, b_mat.transpose(1, 2)) + bias[:, None, :]
    lse = torch.logsumexp(logits, dim=-1)
    loss = (lse - (logits * onehot).sum(-1)).sum(-1) + 0.5 * inv_c * b_mat.pow(2).sum((1, 2))
    resid = torch.softmax(logits, dim=-1) - onehot  # (t, n, k)
    grad_b = torch.bmm(resid.transpose(1, 2), z) + inv_c * b_mat
    grad = torch.cat([grad_b.reshape(t, -1), resid.sum(1)], dim=1)
    return loss, grad


def _span_coordinates(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal-basis coordinates Z (T, n, n) of the supports and the map back to feature space.

    Returns Z and ``M`` (T, n, n) with W = B Mᵀ X, i.e. M = U S^{-1/2} on the numerically non-zero
    spectrum (zero columns elsewhere: their coefficients receive no data gradient and stay 0).
    """
    gram = torch.bmm(x, x.transpose(1, 2))
    evals, evecs = torch.linalg.eigh(gram)
    cutoff = evals.amax(dim=-1, keepdim=True).clamp_min(1e-300) * (x.shape[1] * torch.finfo(x.dtype).eps * 10)
    alive = evals > cutoff
    sqrt_s = torch.where(alive, evals.clamp_min(0).sqrt(), torch.zeros_like(evals))
    inv_sqrt_s = torch.where(alive, 1.0 / sqrt_s.clamp_min(1e-300), torch.zeros_like(evals))
    return evecs * sqrt_s[:, None, :], evecs * inv_sqrt_s[:, None, :]


def fit_logreg_batched(x: torch.Tensor, y: torch.Tensor, n_classes: int, C: float = 1.0, *,
                       tol: float = DEFAULT_TOL, max_iter: int = 1000, device: str | torch.device = "cpu"
                       ) -> BatchedLogReg:
    """Fit one multinomial logistic regression per task, all tasks together.

    Args:
        x: support features (T, n, d); any float dtype (solved in float64).
        y: labels (T, n) in 0..n_classes-1.
        n_classes: k; every task has the same classes 0..k-1.
        C: inverse L2 strength, as scikit-learn's ``LogisticRegression(C=...)``.
        tol: stop a task when max |gradient| of the per-sample-averaged objective is ≤ tol.
        max_iter: L-BFGS iterations at most (tasks not converged by then are flagged).
        device: where to solve (float64; the CPU is fine at few-shot sizes).

    Returns:
        BatchedLogReg with weights in feature space.
    """
    if x.ndim != 3 or y.shape != x.shape[:2]:
        raise ValueError(f"expected x (T, n, d) and y (T, n), got {tuple(x.shape)} and {tuple(y.shape)}")
    if C <= 0:
        raise ValueError(f"C must be positive, got {C}")
    x = x.to(device=device, dtype=torch.float64)
    y = y.to(device=device, dtype=torch.long)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    t, n, _ = x.shape
    z, back = _span_coordinates(x)
    onehot = torch.nn.functional.one_hot(y, n_classes).to(x.dtype)
    inv_c = 1.0 / C
    theta = torch.zeros(t, n_classes * n + n_classes, dtype=x.dtype, device=x.device)
    loss, grad = _objective(theta, z, onehot, inv_c)
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    converged = grad.abs().amax(1) <= tol * n
    iteration = 0
    while iteration < max_iter and not bool(converged.all()):
        iteration += 1
        direction = _two_loop(grad, s_hist, y_hist)
        if iteration == 1:  # no curvature yet: a step of unit length
            direction = direction / grad.norm(dim=1, keepdim=True).clamp_min(1e-300)
        direction = torch.where(converged[:, None], torch.zeros_like(direction), direction)
        step, new_theta, new_loss, new_grad = _armijo(theta, loss, grad, direction, z, onehot, inv_c)
        s = new_theta - theta
        g_diff = new_grad - grad
        s_hist.append(s)
        y_hist.append(g_diff)
        if len(s_hist) > HISTORY:
            s_hist.pop(0)
            y_hist.pop(0)
        theta, loss, grad = new_theta, new_loss, new_grad
        converged = converged | (grad.abs().amax(1) <= tol * n) | (step == 0)
    k = n_classes
    b_mat = theta[:, : k * n].view(t, k, n)
    weight = torch.bmm(torch.bmm(b_mat, back.transpose(1, 2)), x)  # W = B Mᵀ X
    return BatchedLogReg(weight=weight, bias=theta[:, k * n:], iterations=iteration,
                         converged=grad.abs().amax(1) <= tol * n)


def _two_loop(grad: torch.Tensor, s_hist: list[torch.Tensor], y_hist: list[torch.Tensor]) -> torch.Tensor:
    """Batched L-BFGS two-loop recursion; pairs without positive curvature are skipped per task."""
    q = -grad
    alphas = []
    rhos = []
    for s, yv in zip(reversed(s_hist), reversed(y_hist)):
        sy = (s * yv).sum(1)
        rho = torch.where(sy > 1e-20, 1.0 / sy.clamp_min(1e-300), torch.zeros_like(sy))
        alpha = rho * (s * q).sum(1)
        q = q - alpha[:, None] * yv
        alphas.append(alpha)
        rhos.append(rho)
    if s_hist:
        s, yv = s_hist[-1], y_hist[-1]
        sy = (s * yv).sum(1)
        yy = (yv * yv).sum(1)
        gamma = torch.where((sy > 1e-20) & (yy > 0), sy / yy.clamp_min(1e-300), torch.ones_like(sy))
        q = q * gamma[:, None]
    for (s, yv), alpha, rho in zip(zip(s_hist, y_hist), reversed(alphas), reversed(rhos)):
        beta = rho * (yv * q).sum(1)
        q = q + (alpha - beta)[:, None] * s
    return q


def _armijo(theta: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, direction: torch.Tensor,
            z: torch.Tensor, onehot: torch.Tensor, inv_c: float, c1: float = 1e-4, max_halvings: int = 40):
    """Per-task backtracking from step 1 until sufficient decrease; a task that cannot descend gets step 0."""
    slope = (grad * direction).sum(1)
    bad = slope >= 0  # not a descent direction (converged/zero direction or numerical trouble)
    step = torch.where(bad, torch.zeros_like(slope), torch.ones_like(slope))
    pending = ~bad
    new_theta, new_loss, new_grad = theta.clone(), loss.clone(), grad.clone()
    for _ in range(max_halvings):
        if not bool(pending.any()):
            break
        idx = pending.nonzero().squeeze(1)
        cand = theta[idx] + step[idx, None] * direction[idx]
        if len(idx) == len(pending):  # all tasks still searching: avoid copying Z
            c_loss, c_grad = _objective(cand, z, onehot, inv_c)
        else:
            c_loss, c_grad = _objective(cand, z[idx], onehot[idx], inv_c)
        # slack of a few ulps of the loss: near the optimum the decrease is below float64 resolution
        slack = 64 * torch.finfo(loss.dtype).eps * loss[idx].abs()
        ok = c_loss <= loss[idx] + c1 * step[idx] * slope[idx] + slack
        done = idx[ok]
        new_theta[done], new_loss[done], new_grad[done] = cand[ok], c_loss[ok], c_grad[ok]
        pending[done] = False
        step[idx[~ok]] *= 0.5
    step[pending] = 0.0
    return step, new_theta, new_loss, new_grad

"""A batched differentiable convex QP layer (OptNet; Amos & Kolter, ICML 2017) in plain torch.

Solves, for each batch element,

    minimise ½ zᵀQz + pᵀz   subject to   Gz ≤ h,   Az = b,

with Q (B, n, n) symmetric positive definite, p (B, n), G (B, m, n), h (B, m), A (B, k, n), b (B, k).

Why not a library: ``qpth``, the QP layer MetaOptNet used, pins ``numpy<2`` and pulls in ``cvxpy``, which would
downgrade this environment's numpy. So the layer is re-implemented here from the OptNet paper's math.

Forward (no autograd, float64 by default): a primal–dual interior-point method with Mehrotra's
predictor–corrector, as in OptNet. With slacks s = h − Gz ≥ 0 and duals λ ≥ 0 (for Gz ≤ h) and ν (for Az = b)
it drives the residuals of the KKT conditions

    r_d = Qz + p + Gᵀλ + Aᵀν = 0,   r_p = Gz + s − h = 0,   r_e = Az − b = 0,   s∘λ = 0

to zero. Each Newton system is solved unreduced, in (Δz, Δλ, Δν), with the complementarity row
λ∘GΔz − s∘Δλ = r divided by max(s, λ):

    [[Q, Gᵀ, Aᵀ], [w_λ G, −diag(w_s), 0], [A, 0, 0]],   w_λ = λ / max(s, λ),   w_s = s / max(s, λ),

factorised once per iteration (batched LU, ``torch.linalg``) and solved twice: the affine predictor and the
centred corrector. All its entries stay bounded as s or λ go to 0. OptNet (like CVXOPT) eliminates Δλ and
factorises the smaller [[Q + Gᵀ diag(λ/s) G, Aᵀ], [A, 0]] instead; λ/s diverges on the active constraints, and
that form stalled at relative residuals 1e-9 to 1e-10 on problems of the SVM head's size (375 variables) where
this one reaches 1e-13 within 18 iterations, at 2–3× the cost of an iteration (size n + m + k, not n + k).
The start point is CVXOPT's (this matrix at s = λ = 1, slacks and duals shifted to be positive). Iteration
stops when every batch element's residual is at most ``tol`` (the largest of ‖r_d‖∞, ‖r_p‖∞, ‖r_e‖∞, each
relative to 1 + the largest term of its sum, and max s∘λ), or after ``max_iter`` iterations; converged
elements stay put meanwhile. Default ``max_iter`` 30: random float64 problems with up to a few hundred
variables and constraints converge to 1e-10 in 9–18 iterations. MetaOptNet trained with 15 iterations (its
``maxIter``, which the SVM head keeps): the result need not have converged then, and :func:`interior_point`
reports how far it is.

Backward (OptNet §3): implicit differentiation of the KKT conditions at the solution. Differentiating
Qz + p + Gᵀλ + Aᵀν = 0, diag(λ)(Gz − h) = 0, Az − b = 0 gives M [dz; dλ; dν] = −(terms in dQ, dp, dG, dh,
dA, db), with M = [[Q, Gᵀ, Aᵀ], [diag(λ)G, diag(Gz − h), 0], [A, 0, 0]]. For the loss gradient z̄ one solve
of Mᵀ [d_z; d_λ; d_ν] = [z̄; 0; 0] per batch element gives all six gradients (u = λ∘d_λ):

    ∇p = −d_z,   ∇Q = −½(d_z zᵀ + z d_zᵀ),   ∇h = u,   ∇G = −(λ d_zᵀ + u zᵀ),   ∇b = d_ν,   ∇A = −(ν d_zᵀ + d_ν zᵀ).

In the unknowns (d_z, u, d_ν) this is the symmetric [[Q, Gᵀ, Aᵀ], [G, −diag(s/λ), 0], [A, 0, 0]], whose
second block row scaled by λ/max(s, λ) is the forward's Newton matrix at the solution: one LU of it per
batch element. It is nonsingular under strict complementarity (no constraint with s = λ = 0), linearly
independent active constraints and equalities, and Q positive definite on their null space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Fraction of the step to the boundary of s, λ ≥ 0 that an iteration takes (keeps the iterate interior).
_STEP_FRACTION = 0.99


@dataclass(frozen=True)
class QPResult:
    """The interior-point solution of a batch of QPs, with how well each satisfies the KKT conditions."""

    z: Tensor  #: (B, n) primal solution
    s: Tensor  #: (B, m) slacks h − Gz
    lam: Tensor  #: (B, m) multipliers of Gz ≤ h
    nu: Tensor  #: (B, k) multipliers of Az = b
    residual: Tensor  #: (B,) KKT residual at the returned point (relative ‖r_d‖∞, ‖r_p‖∞, ‖r_e‖∞; max s∘λ)
    converged: Tensor  #: (B,) bool: residual ≤ tol
    iterations: int  #: interior-point iterations run (0 without inequalities: one linear solve is exact)


def _mv(M: Tensor, v: Tensor) -> Tensor:
    return (M @ v.unsqueeze(-1)).squeeze(-1)


def _mtv(M: Tensor, v: Tensor) -> Tensor:
    return (v.unsqueeze(-2) @ M).squeeze(-2)


def _kkt_matrix(Q: Tensor, G: Tensor, A: Tensor, s: Tensor, lam: Tensor) -> Tensor:
    """[[Q, Gᵀ, Aᵀ], [w_λ G, −diag(w_s), 0], [A, 0, 0]] with w_λ = λ/max(s, λ), w_s = s/max(s, λ)."""
    B, n, m, k = Q.shape[0], Q.shape[-1], G.shape[-2], A.shape[-2]
    scale = torch.maximum(s, lam)
    M = Q.new_zeros(B, n + m + k, n + m + k)
    M[:, :n, :n] = Q
    M[:, :n, n:n + m] = G.transpose(-1, -2)
    M[:, :n, n + m:] = A.transpose(-1, -2)
    M[:, n:n + m, :n] = (lam / scale).unsqueeze(-1) * G
    M[:, n:n + m, n:n + m] = torch.diag_embed(-s / scale)
    M[:, n + m:, :n] = A
    return M


def _per_matrix(function: Any, *batches: Tensor) -> tuple[Tensor, ...] | Tensor:
    """``function`` applied to one matrix of the batch at a time, results stacked.

    Why not one batched call: torch's batched CPU LAPACK path (getrf/getrs over the batch with more than
    one OpenMP thread) fails here with "oneMKL ERROR: Parameter 6 was incorrect on entry to DLASWP" and
    never returns (torch 2.14.1, measured on the 2-core development machine); one matrix at a time uses
    every thread inside MKL and is correct. The batch is a few tasks, so the loop costs nothing.
    """
    results = [function(*items) for items in zip(*batches)]
    if isinstance(results[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*results))
    return torch.stack(results)


def _factor(M: Tensor) -> tuple[Tensor, Tensor]:
    lu, pivots, info = _per_matrix(torch.linalg.lu_factor_ex, M)
    if bool((info > 0).any()):
        raise ValueError("singular KKT matrix: A must have full row rank and Q be positive definite on the "
                         "null space of A")
    return lu, pivots


def _newton(factor: tuple[Tensor, Tensor], s: Tensor, lam: Tensor, a_1: Tensor, a_2: Tensor,
            a_3: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Solve QΔz + GᵀΔλ + AᵀΔν = a_1, λ∘GΔz − s∘Δλ = a_2, AΔz = a_3 (the second row scaled by 1/max(s, λ))."""
    n, m = a_1.shape[-1], a_2.shape[-1]
    rhs = torch.cat([a_1, a_2 / torch.maximum(s, lam), a_3], dim=-1)
    sol = _per_matrix(torch.linalg.lu_solve, *factor, rhs.unsqueeze(-1)).squeeze(-1)
    return sol[..., :n], sol[..., n:n + m], sol[..., n + m:]


def _inf_norm(x: Tensor) -> Tensor:
    """max |x| over the last dimension, 0 when it is empty (no constraints of that kind)."""
    return x.abs().amax(-1) if x.shape[-1] else x.new_zeros(x.shape[:-1])


def _relative(r: Tensor, *terms: Tensor) -> Tensor:
    """‖r‖∞ relative to 1 + the largest ‖term‖∞ of the sum r is made of (reachable in floating point)."""
    scale = torch.stack([_inf_norm(term) for term in terms]).amax(0)
    return _inf_norm(r) / (1 + scale)


def _max_step(x: Tensor, dx: Tensor) -> Tensor:
    """Per batch element, the largest α with x + α·dx ≥ 0 (inf when dx ≥ 0)."""
    ratio = torch.where(dx < 0, -x / dx.clamp(max=-torch.finfo(x.dtype).tiny), torch.inf)
    return ratio.amin(dim=-1)


def _shift_positive(x: Tensor) -> Tensor:
    """CVXOPT's start: x unchanged when all entries are positive, else shifted to min 1."""
    low = x.amin(dim=-1, keepdim=True)
    return torch.where(low > 0, x, x + 1 - low)


@torch.no_grad()
def interior_point(Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, *, max_iter: int = 30,
                   tol: float = 1e-10) -> QPResult:
    """Solve a batch of QPs (all inputs batched, one dtype) by Mehrotra's predictor–corrector method.

    The result keeps the duals and the KKT residual so that callers and tests can check convergence; the
    differentiable entry point is :func:`solve_qp`.
    """
    B, m = Q.shape[0], G.shape[-2]
    # CVXOPT's start: the Newton matrix at s = λ = 1 gives the minimiser of ½zᵀQz + pᵀz + ½‖Gz − h‖² on Az = b
    # and w = Gz − h, from which slacks −w and duals w are shifted to be positive
    ones = G.new_ones(B, m)
    z, w, nu = _newton(_factor(_kkt_matrix(Q, G, A, ones, ones)), ones, ones, -p, h, b)
    if m == 0:
        Qz, Az, An = _mv(Q, z), _mv(A, z), _mtv(A, nu)
        residual = torch.maximum(_relative(Qz + p + An, Qz, p, An), _relative(Az - b, Az, b))
        return QPResult(z, w, w.clone(), nu, residual, residual <= tol, 0)
    s, lam = _shift_positive(-w), _shift_positive(w)

    def residuals() -> tuple[Tensor, Tensor, Tensor, Tensor]:
        Qz, Gz, Az, Gl, An = _mv(Q, z), _mv(G, z), _mv(A, z), _mtv(G, lam), _mtv(A, nu)
        r_d, r_p, r_e = Qz + p + Gl + An, Gz + s - h, Az - b
        res = torch.stack([_relative(r_d, Qz, p, Gl, An), _relative(r_p, Gz, h), _relative(r_e, Az, b),
                           (s * lam).amax(-1)]).amax(0)
        return r_d, r_p, r_e, res

    iterations = 0
    r_d, r_p, r_e, res = residuals()
    while iterations < max_iter and not bool((res <= tol).all()):
        iterations += 1
        factor = _factor(_kkt_matrix(Q, G, A, s, lam))
        # predictor: the pure Newton (affine-scaling) direction
        dz, dlam, dnu = _newton(factor, s, lam, -r_d, s * lam - lam * r_p, -r_e)
        ds = -r_p - _mv(G, dz)
        alpha = torch.minimum(_max_step(s, ds), _max_step(lam, dlam)).clamp(max=1.0).unsqueeze(-1)
        mu = (s * lam).mean(-1, keepdim=True)
        mu_aff = ((s + alpha * ds) * (lam + alpha * dlam)).mean(-1, keepdim=True)
        sigma = (mu_aff / mu).clamp(min=0.0) ** 3
        # corrector: centred towards σμ, with the predictor's second-order term
        r_c = s * lam + ds * dlam - sigma * mu
        dz, dlam, dnu = _newton(factor, s, lam, -r_d, r_c - lam * r_p, -r_e)
        ds = -r_p - _mv(G, dz)
        step = (_STEP_FRACTION * torch.minimum(_max_step(s, ds), _max_step(lam, dlam))).clamp(max=1.0)
        moving = (res > tol).unsqueeze(-1)  # converged elements stay where they are
        step = step.unsqueeze(-1)
        z, s, lam, nu = (torch.where(moving, x + step * dx, x) for x, dx in ((z, dz), (s, ds), (lam, dlam), (nu, dnu)))
        r_d, r_p, r_e, res = residuals()
    return QPResult(z, s, lam, nu, res, res <= tol, iterations)


class _QPFunction(torch.autograd.Function):
    """z*(Q, p, G, h, A, b) with the OptNet backward; Q must already be symmetric."""

    @staticmethod
    def forward(ctx: Any, Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, max_iter: int,
                tol: float) -> Tensor:
        result = interior_point(Q, p, G, h, A, b, max_iter=max_iter, tol=tol)
        ctx.save_for_backward(Q, G, A, result.z, result.s, result.lam, result.nu)
        return result.z

    @staticmethod
    @once_differentiable  # z, s, λ, ν were computed without autograd: no second derivatives
    def backward(ctx: Any, grad_z: Tensor) -> tuple[Tensor | None, ...]:
        Q, G, A, z, s, lam, nu = ctx.saved_tensors
        n, m, k = Q.shape[-1], G.shape[-2], A.shape[-2]
        rhs = torch.cat([grad_z, grad_z.new_zeros(grad_z.shape[0], m + k)], dim=-1)
        sol = _per_matrix(torch.linalg.solve, _kkt_matrix(Q, G, A, s, lam), rhs.unsqueeze(-1)).squeeze(-1)
        d_z, u, d_nu = sol[:, :n], sol[:, n:n + m], sol[:, n + m:]
        outer = d_z.unsqueeze(-1) * z.unsqueeze(-2)
        need = ctx.needs_input_grad
        return (-(outer + outer.transpose(-1, -2)) / 2 if need[0] else None,
                -d_z if need[1] else None,
                -(lam.unsqueeze(-1) * d_z.unsqueeze(-2) + u.unsqueeze(-1) * z.unsqueeze(-2)) if need[2] else None,
                u if need[3] else None,
                -(nu.unsqueeze(-1) * d_z.unsqueeze(-2) + d_nu.unsqueeze(-1) * z.unsqueeze(-2)) if need[4] else None,
                d_nu if need[5] else None,
                None, None)


def solve_qp(Q: Tensor, p: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, *, max_iter: int = 30,
             tol: float = 1e-10, dtype: torch.dtype | None = torch.float64) -> Tensor:
    """The minimiser z (B, n) of ½ zᵀQz + pᵀz s.t. Gz ≤ h, Az = b, differentiable w.r.t. all six inputs.

    Each input may carry the batch dimension or not (then it is shared by the batch); with none batched the
    result is (n,). No inequalities or no equalities: pass G (m = 0, n), h (0,) or A (0, n), b (0,).
    Only the symmetric part of Q enters (the objective sees no other). The solve runs in ``dtype`` (float64
    by default: the interior point's last iterations need it; None keeps the input dtype) and the result is
    cast back to Q's dtype.
    """
    inputs = {"Q": (Q, 3), "p": (p, 2), "G": (G, 3), "h": (h, 2), "A": (A, 3), "b": (b, 2)}
    for name, (tensor, dims) in inputs.items():
        if tensor.dim() not in (dims - 1, dims):
            raise ValueError(f"solve_qp: {name} must have {dims - 1} or {dims} dimensions, got {tuple(tensor.shape)}")
    batched = [t if t.dim() == dims else t.unsqueeze(0) for t, dims in inputs.values()]
    size = torch.broadcast_shapes(*[t.shape[:1] for t in batched])
    work = dtype or Q.dtype
    Q, p, G, h, A, b = (t.expand(size + t.shape[1:]).to(work) for t in batched)
    z = _QPFunction.apply((Q + Q.transpose(-1, -2)) / 2, p, G, h, A, b, max_iter, tol)
    z = z.to(inputs["Q"][0].dtype)
    return z if any(t.dim() == dims for t, dims in inputs.values()) else z.squeeze(0)

"""The analytical MetaNTK Φ assembled from the empirical NTK (Paper Eq. 106 MAML, Eq. 112 ANIL; official §2.4).

For tasks i, j with query rows Q and support rows S, K the inner-loop kernel (MAML: K = Θ;
ANIL: K = 𝒦, the last-layer kernel) and T_i the inner-loop operator of task i,

    P_i  = K(Q_i, S_i) T_i
    Φ_ij = Θ(Q_i, Q_j) − P_i Θ(S_i, Q_j) − Θ(Q_i, S_j) P_jᵀ + P_i Θ(S_i, S_j) P_jᵀ.

Inner loop ("flow", gradient flow for time τ at rate λ, official): T = pinvh(K_SS + ρI)(I − e^{−λτ K_SS}),
the regulariser only inside the inverse; λτ = ∞ (or ≥ 1000, as the official launcher) drops the exponential.
Inner loop ("steps", k gradient steps of rate λ on ½‖f(X′) − Y′‖²): T = Σ_{s<k} λ (I − λ K_SS)^s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg

ALGORITHMS = ("maml", "anil")
INNER = ("flow", "steps")

#: λτ at or above this is treated as ∞ (official ``prune_launch.py``: ``--inner_lr_time >= 1000`` → inf).
LAM_TAU_INFINITE = 1000.0


@dataclass(frozen=True)
class TaskLayout:
    """Which kernel rows belong to which task (official order, §2.1).

    Samples are ordered all queries task-major (task 0's ``n_query``, task 1's, ...), then all supports in
    the same task order. With ``n_outputs = k`` ("logits" kernels) every sample owns k consecutive rows
    (sample-major, as :func:`~metantk_nas.kernels.ntk.empirical_ntk` returns them).
    """

    n_tasks: int
    n_query: int
    n_support: int
    n_outputs: int = 1

    def __post_init__(self) -> None:
        for key in ("n_tasks", "n_query", "n_support", "n_outputs"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"TaskLayout.{key} must be >= 1, got {getattr(self, key)}")

    @property
    def n_samples(self) -> int:
        return self.n_tasks * (self.n_query + self.n_support)

    @property
    def n_rows(self) -> int:
        return self.n_samples * self.n_outputs

    def _row_range(self, first_sample: int, count: int) -> np.ndarray:
        k = self.n_outputs
        return (np.arange(first_sample, first_sample + count)[:, None] * k + np.arange(k)).reshape(-1)

    def query_rows(self, task: int) -> np.ndarray:
        """Kernel row indices of task ``task``'s queries."""
        return self._row_range(task * self.n_query, self.n_query)

    def support_rows(self, task: int) -> np.ndarray:
        """Kernel row indices of task ``task``'s supports."""
        return self._row_range(self.n_tasks * self.n_query + task * self.n_support, self.n_support)

    def all_query_rows(self) -> np.ndarray:
        return np.concatenate([self.query_rows(i) for i in range(self.n_tasks)])


def inner_operator(
    k_ss: np.ndarray, *, inner: str = "flow", lam_tau: float = math.inf, steps: int = 1,
    lam: float | None = None, reg: float = 1e-3,
) -> np.ndarray:
    """The inner-loop operator T of one task from its support kernel block (see module docstring)."""
    eye = np.eye(k_ss.shape[0])
    if inner == "flow":
        if not lam_tau > 0:
            raise ValueError(f"lam_tau must be > 0, got {lam_tau}")
        inverse = scipy.linalg.pinvh(k_ss + reg * eye)
        if lam_tau >= LAM_TAU_INFINITE:
            return inverse
        return inverse @ (eye - scipy.linalg.expm(-lam_tau * k_ss))
    if inner == "steps":
        if lam is None or not lam > 0:
            raise ValueError(f"inner='steps' needs a learning rate lam > 0, got {lam}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        step = eye - lam * k_ss
        total, power = np.zeros_like(eye), eye
        for _ in range(steps):
            total += lam * power
            power = power @ step
        return total
    raise ValueError(f"inner must be one of {INNER}, got {inner!r}")


def meta_ntk(
    theta: np.ndarray,
    k: np.ndarray | None,
    layout: TaskLayout,
    *,
    inner: str = "flow",
    lam_tau: float = math.inf,
    steps: int = 1,
    lam: float | None = None,
    reg: float = 1e-3,
    algorithm: str = "maml",
) -> np.ndarray:
    """Analytical MetaNTK Φ over the query rows of all tasks (float64).

    Args:
        theta: empirical NTK Θ over all rows of ``layout`` (queries first, then supports).
        k: ANIL's last-layer kernel 𝒦 (same rows), i.e. ``NTKResult.last_layer``. MAML's inner loop uses Θ
            itself (official: K is Θ), so ``k`` is not used for ``algorithm="maml"`` and may be ``None``.
        layout: the task/row structure.
        inner: ``"flow"`` (official) or ``"steps"``; ``lam_tau``/``reg`` apply to flow, ``lam``/``steps`` to steps.
        algorithm: ``"maml"`` (Eq. 106) or ``"anil"`` (Eq. 112).

    Returns:
        Φ of shape (n_tasks·n_query·n_outputs,)², symmetric; task-major blocks in query row order.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (layout.n_rows, layout.n_rows):
        raise ValueError(f"theta has shape {theta.shape}, layout {layout} expects {(layout.n_rows,) * 2}")
    if algorithm == "maml":
        inner_kernel = theta
    elif algorithm == "anil":
        if k is None:
            raise ValueError("algorithm='anil' needs the last-layer kernel k")
        inner_kernel = np.asarray(k, dtype=np.float64)
        if inner_kernel.shape != theta.shape:
            raise ValueError(f"k has shape {inner_kernel.shape}, expected {theta.shape}")
    else:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")

    queries = [layout.query_rows(i) for i in range(layout.n_tasks)]
    supports = [layout.support_rows(i) for i in range(layout.n_tasks)]
    # P_i = K(Q_i, S_i) T_i, from each task's own support block only.
    projections = [
        inner_kernel[np.ix_(q, s)]
        @ inner_operator(inner_kernel[np.ix_(s, s)], inner=inner, lam_tau=lam_tau, steps=steps, lam=lam, reg=reg)
        for q, s in zip(queries, supports, strict=True)
    ]
    blocks = [[None] * layout.n_tasks for _ in range(layout.n_tasks)]
    for i in range(layout.n_tasks):
        for j in range(layout.n_tasks):
            qi, qj, si, sj, pi, pj = queries[i], queries[j], supports[i], supports[j], projections[i], projections[j]
            blocks[i][j] = (
                theta[np.ix_(qi, qj)]
                - pi @ theta[np.ix_(si, qj)]
                - theta[np.ix_(qi, sj)] @ pj.T
                + pi @ theta[np.ix_(si, sj)] @ pj.T
            )
    return np.block(blocks)

"""Theorem 2 (MAML as MetaNTK kernel regression), Eq. (12)-(13), evaluated with the empirical NTK at init.

For a test task ``(X, X', Y')`` the closed form is

    F_t(X, X', Y') = G(X, X', Y') + Phi((X, X'), (𝒳, 𝒳')) T_Phi(t) (𝒴 - G(𝒳, 𝒳', 𝒴')),
    G(X, X', Y')   = Theta(X, X') T_Theta(X') Y'.

The paper writes both operators for gradient *flow* (``T = K^{-1}(I - e^{-rate K time})``). The network here is
trained with discrete steps, and the exact solution of the linearised network under ``k`` inner steps of
rate ``lambda`` and ``t`` outer steps of rate ``eta`` is the same formula with the exponentials replaced by
powers: ``T_Theta = sum_{s<k} lambda (I - lambda Theta)^s`` (MetaNTK ``inner="steps"``) and
``T_Phi(t) = Phi^{-1}(I - (I - eta Phi)^t)``. That discrete form (``"steps"``) is the predictor compared with
the network; the literal flow form with ``lambda tau = k lambda`` and time ``eta t`` (``"flow"``) is reported
beside it, since it differs from what the network does by the discretisation, which no width removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metantk_nas.kernels.metantk import TaskLayout, inner_operator, meta_ntk

#: Below this magnitude a kernel eigenvalue is treated as 0 in ``T_Phi`` (whose limit there is ``eta t``).
_EIGEN_ZERO = 1e-300

DISCRETISATIONS = ("steps", "flow")


@dataclass(frozen=True)
class Dynamics:
    """Inner loop (``inner_steps`` steps of rate ``inner_lr``), discrete steps or gradient flow."""

    inner_steps: int
    inner_lr: float
    discretisation: str = "steps"

    def __post_init__(self) -> None:
        if self.discretisation not in DISCRETISATIONS:
            raise ValueError(f"discretisation must be one of {DISCRETISATIONS}, got {self.discretisation!r}")

    def _inner_kwargs(self) -> dict:
        if self.discretisation == "steps":
            return {"inner": "steps", "steps": self.inner_steps, "lam": self.inner_lr}
        # reg = 0: the exact inverse; lam_tau below LAM_TAU_INFINITE keeps the exponential.
        return {"inner": "flow", "lam_tau": self.inner_steps * self.inner_lr, "reg": 0.0}

    def inner_operator(self, support_kernel: np.ndarray) -> np.ndarray:
        """``T_Theta(X')`` of one task from its support block ``Theta(X', X')``."""
        return inner_operator(support_kernel, **self._inner_kwargs())

    def meta_kernel(self, theta: np.ndarray, layout: TaskLayout) -> np.ndarray:
        """The MetaNTK ``Phi`` over the query rows of every task in ``layout`` (Eq. 10-11 / 106)."""
        return meta_ntk(theta, None, layout, algorithm="maml", **self._inner_kwargs())

    def outer_filter(self, eigenvalues: np.ndarray, outer_lr: float, steps: int) -> np.ndarray:
        """Spectral form of ``T_Phi(t)``: ``(1 - (1 - eta s)^t) / s`` (steps) or ``(1 - e^{-eta t s}) / s`` (flow)."""
        s = np.asarray(eigenvalues, dtype=np.float64)
        tiny = np.abs(s) < _EIGEN_ZERO
        safe = np.where(tiny, 1.0, s)
        if self.discretisation == "steps":
            values = (1.0 - (1.0 - outer_lr * safe) ** steps) / safe
        else:
            values = -np.expm1(-outer_lr * steps * safe) / safe
        return np.where(tiny, outer_lr * steps, values)


def g_function(theta: np.ndarray, layout: TaskLayout, support_targets: np.ndarray, dynamics: Dynamics) -> np.ndarray:
    """Eq. (13) for every task of ``layout``: ``Theta(X_i, X'_i) T_Theta(X'_i) Y'_i``, stacked task-major.

    ``support_targets`` is ``(N, m, k)``; the result has the layout's query rows (sample-major, k per sample).
    """
    outputs = []
    for task in range(layout.n_tasks):
        q, s = layout.query_rows(task), layout.support_rows(task)
        operator = dynamics.inner_operator(theta[np.ix_(s, s)])
        outputs.append(theta[np.ix_(q, s)] @ operator @ np.asarray(support_targets[task], dtype=np.float64).ravel())
    return np.concatenate(outputs)


def predict(phi: np.ndarray, g: np.ndarray, train_rows: int, query_targets: np.ndarray, dynamics: Dynamics,
            outer_lr: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. (12) after ``steps`` outer steps of rate ``outer_lr``: meta-outputs of the training and held-out rows.

    ``phi`` and ``g`` cover the query rows of all tasks, the training tasks' ``train_rows`` rows first
    (so ``phi[:train_rows, :train_rows]`` is the training MetaNTK and ``phi[train_rows:, :train_rows]`` the
    held-out-to-training block); ``query_targets`` are the training tasks' one-hot query targets.
    """
    if not 0 < train_rows < phi.shape[0]:
        raise ValueError(f"train_rows must leave held-out rows, got {train_rows} of {phi.shape[0]}")
    phi_train, phi_cross = phi[:train_rows, :train_rows], phi[train_rows:, :train_rows]
    eigenvalues, vectors = np.linalg.eigh(phi_train)
    residual = np.asarray(query_targets, dtype=np.float64).ravel() - g[:train_rows]
    weights = vectors @ (dynamics.outer_filter(eigenvalues, outer_lr, steps) * (vectors.T @ residual))
    return g[:train_rows] + phi_train @ weights, g[train_rows:] + phi_cross @ weights


def relative_gap(network: np.ndarray, kernel: np.ndarray) -> float:
    """``||F_net - F_kernel||_F / ||F_kernel||_F``."""
    network, kernel = np.asarray(network, dtype=np.float64).ravel(), np.asarray(kernel, dtype=np.float64).ravel()
    return float(np.linalg.norm(network - kernel) / np.linalg.norm(kernel))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of queries whose largest output is the true way (``outputs`` ``(..., k)``)."""
    outputs = np.asarray(outputs).reshape(*np.asarray(labels).shape, -1)
    return float((outputs.argmax(-1) == np.asarray(labels)).mean())

"""Theorem 1 (global convergence at a linear rate), measured.

Theorem 3 (the restated Theorem 1, Appendix B) runs gradient descent with ``eta = eta_0 / l`` in the
standard parameterisation, i.e. rate ``eta_0`` in the NTK parameterisation used here, for any
``eta_0 < 2 / (sigma_max(Phi) + sigma_min(Phi))``, and bounds the loss by
``L(theta_t) <= (1 - eta_0 sigma_min(Phi) / 3)^{2t} R`` with ``R = ½ R_0² >= L(theta_0)`` (Eq. 6 / 32).
So the per-step loss factor it guarantees is ``rho_bound = (1 - eta sigma_min / 3)²`` with the rate
``eta`` actually used, and ``R = L(theta_0)`` is the tightest admissible constant.
A linear model with kernel ``Phi`` would decay at ``rho_kernel = max_i (1 - eta sigma_i)²`` per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Losses below ``L_0 * FIT_FLOOR`` are at float32 round-off and are left out of the rate fit.
FIT_FLOOR = 1e-11


@dataclass(frozen=True)
class RateFit:
    """Least-squares line through ``log L_t`` on the straight part ``[start, stop]`` of the trajectory."""

    start: int
    stop: int
    slope: float  # d log L / dt
    intercept: float
    r2: float  # on the window
    r2_full: float  # the same line's fit over every step up to ``stop``, for reference

    @property
    def factor(self) -> float:
        """Fitted per-step loss factor ``exp(slope)``."""
        return float(np.exp(self.slope))


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - fitted) ** 2).sum()) / total if total > 0 else 1.0


def fit_linear_rate(losses: np.ndarray, floor: float = FIT_FLOOR) -> RateFit:
    """Fit ``log L_t = a + b t`` on the second half of the steps above the round-off floor.

    The early steps mix several kernel eigen-modes (log-loss is curved there); once the faster modes
    are gone the slowest one dominates and log-loss is straight, which the second half captures.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.size < 4 or not np.all(np.isfinite(losses)) or losses[0] <= 0:
        raise ValueError(f"need at least 4 finite losses with L_0 > 0 to fit a rate, got {losses[:5]}...")
    above = losses > losses[0] * floor
    stop = int(np.argmin(above)) - 1 if not above.all() else losses.size - 1
    if stop < 3:
        raise ValueError(f"the loss reached the round-off floor after {stop} steps; too few to fit a rate")
    start = stop // 2
    steps = np.arange(start, stop + 1, dtype=np.float64)
    logs = np.log(losses[start:stop + 1])
    slope, intercept = np.polyfit(steps, logs, 1)
    all_steps = np.arange(0, stop + 1, dtype=np.float64)
    return RateFit(
        start=start, stop=stop, slope=float(slope), intercept=float(intercept),
        r2=_r2(logs, slope * steps + intercept),
        r2_full=_r2(np.log(losses[:stop + 1]), slope * all_steps + intercept),
    )


def bound_factor(eta: float, sigma_min: float) -> float:
    """Eq. (6)'s per-step loss factor ``(1 - eta sigma_min / 3)²``."""
    return float((1.0 - eta * sigma_min / 3.0) ** 2)


def kernel_factor(eta: float, eigenvalues: np.ndarray) -> float:
    """Slowest per-step loss factor of gradient descent on a linear model with kernel eigenvalues ``sigma_i``."""
    return float(np.max((1.0 - eta * np.asarray(eigenvalues)) ** 2))


def bound_curve(losses: np.ndarray, eta: float, sigma_min: float) -> np.ndarray:
    """``L_0 (1 - eta sigma_min / 3)^{2t}`` for ``t = 0 .. len(losses) - 1`` (Eq. 6 with ``R = L_0``)."""
    return losses[0] * bound_factor(eta, sigma_min) ** np.arange(len(losses), dtype=np.float64)


def summarise_convergence(losses: np.ndarray, eta: float, eigenvalues: np.ndarray) -> dict[str, float]:
    """Every number the convergence claim uses for one width."""
    eigenvalues = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    sigma_min, sigma_max = float(eigenvalues[0]), float(eigenvalues[-1])
    fit = fit_linear_rate(losses)
    curve = bound_curve(losses, eta, sigma_min)
    above_floor = losses[: fit.stop + 1]
    return {
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "eta": eta,
        "eta_limit": 2.0 / (sigma_max + sigma_min),
        "loss_initial": float(losses[0]),
        "loss_final": float(losses[-1]),
        "orders_of_magnitude": float(np.log10(losses[0] / losses[-1])),
        "fit_start": fit.start,
        "fit_stop": fit.stop,
        "fit_slope": fit.slope,
        "fit_r2": fit.r2,
        "fit_r2_full": fit.r2_full,
        "rate_fitted": fit.factor,
        "rate_bound": bound_factor(eta, sigma_min),
        "rate_kernel": kernel_factor(eta, eigenvalues),
        "bound_ratio_max": float(np.max(above_floor / curve[: fit.stop + 1])),
    }

"""Condition number of a kernel, reproducing the official handling (official §2.5, quirk §8.7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Value the official code assigns when the ratio is NaN or the backbone features are zero.
DEGENERATE_CONDITION = 1e5


@dataclass(frozen=True)
class ConditionNumber:
    """λ_max / λ_min of a symmetric kernel and its spectrum.

    Attributes:
        value: ``eigenvalues[-1] / eigenvalues[0]`` with **signed** eigenvalues (no absolute values, no
            clipping, as the official code); NaN becomes :data:`DEGENERATE_CONDITION`. A non-positive
            ``eigenvalues[0]`` makes the value negative or huge: inspect the spectrum.
        eigenvalues: ascending float64 eigenvalues (``numpy.linalg.eigh``).
    """

    value: float
    eigenvalues: np.ndarray

    @property
    def negatives(self) -> int:
        """Number of eigenvalues ≤ 0 (a PSD kernel should have none)."""
        return int(np.sum(self.eigenvalues <= 0))

    def summary(self) -> dict[str, float | int]:
        """JSON-friendly spectrum summary."""
        return {
            "condition_number": self.value,
            "eigenvalue_min": float(self.eigenvalues[0]),
            "eigenvalue_max": float(self.eigenvalues[-1]),
            "non_positive_eigenvalues": self.negatives,
            "size": int(self.eigenvalues.size),
        }


def condition_number(phi: np.ndarray) -> ConditionNumber:
    """Condition number of the symmetric matrix ``phi`` from its float64 eigenvalues (``eigh``)."""
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] != phi.shape[1] or phi.shape[0] == 0:
        raise ValueError(f"phi must be a non-empty square matrix, got shape {phi.shape}")
    if not np.all(np.isfinite(phi)):
        return ConditionNumber(DEGENERATE_CONDITION, np.full(phi.shape[0], np.nan))
    eigenvalues = np.linalg.eigh(phi)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(np.nan_to_num(eigenvalues[-1] / eigenvalues[0], nan=DEGENERATE_CONDITION))
    return ConditionNumber(value, eigenvalues)

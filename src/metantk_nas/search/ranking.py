"""Global ranking of pruning candidates, reproducing the official tie handling exactly.

The official search (TE-NAS lineage, reference §4.2–§4.4) ranks candidates by two scores:
ΔC (change of the condition number, higher = more prunable) sorted *descending* and ΔR
(change of the linear-region count, lower = more prunable) sorted *ascending*. Sorting uses
a 3-significant-figure key, but ranks are *dense* and two neighbours share a rank only when
their raw (unrounded) means are exactly equal. The two ranks are summed and the candidates are
stably sorted by that sum, ties keeping the ΔC-sorted order. Every detail changes which op is
removed on near-ties, so it is kept here verbatim and tested against hand-made tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

#: How the official code rounds each repeat's relative change (reference §2.6, §3): ΔC is a NumPy float there
#: (``np.nan_to_num`` of the eigenvalue ratio), so ``round`` is NumPy's; ΔR comes from region counts that are
#: Python floats (``.item()``), so ``round`` is Python's.
DELTA_ROUNDING = {"c": "numpy", "r": "python"}

#: Significant figures of the sort key (official ``round_to(x, 3)``).
SORT_SIGNIFICANT_FIGURES = 3
#: Guard added to ``|x|`` before taking its decimal exponent (official ``eps=1e-8``).
ROUND_EPS = 1e-8


def round_decimals(value: float, precision: int, rounding: str) -> float:
    """Round ``value`` to ``precision`` decimals as the official code rounds that score.

    ``numpy``: ``round(np.float64(x), p)``, i.e. ``np.round``: ``x·10^p`` to the nearest integer, half-way to
    even, divided back (0.0025 → 0.002, 0.0075 → 0.008). ``python``: the built-in ``round`` of a float, exact
    on its binary value (0.0025 is stored as 0.00250000000000000005 → 0.003; 0.0075 as 0.00749999… → 0.007).
    The two differ only next to half-way cases.
    """
    if rounding == "numpy":
        return float(round(np.float64(value), precision))
    if rounding == "python":
        return round(float(value), precision)
    raise ValueError(f"rounding must be 'numpy' or 'python', got {rounding!r}")


def round_to(value: float, figures: int = SORT_SIGNIFICANT_FIGURES, eps: float = ROUND_EPS) -> float:
    """Round ``value`` to ``figures`` significant figures the way the official code does.

    Zero stays zero; otherwise ``sign · round(m, figures) · 10**p`` with ``m = (|x|+eps)/10**p``
    in [0.1, 1). The ``eps`` guard nudges exact powers of ten (it is part of the reproduced key).
    """
    if value == 0:
        return value
    if not math.isfinite(value):
        raise ValueError(f"cannot rank a non-finite score: {value!r}")
    sign = 1.0 if value > 0 else -1.0
    magnitude = abs(value) + eps
    power = math.floor(math.log10(magnitude)) + 1
    return sign * round(magnitude * 10.0 ** (-power), figures) * 10.0**power


def dense_ranks(items: Sequence[tuple[K, float]], descending: bool) -> list[tuple[K, int]]:
    """Sort ``(key, mean)`` pairs on the rounded mean and assign dense ranks.

    The sort is stable (input order kept on equal rounded keys); an item shares the previous
    item's rank iff its raw mean equals the previous raw mean, else the rank grows by one.

    Returns:
        ``(key, rank)`` in sorted order, ranks starting at 0.
    """
    ordered = sorted(items, key=lambda item: round_to(item[1]), reverse=descending)
    ranked: list[tuple[K, int]] = []
    rank = 0
    for index, (key, mean) in enumerate(ordered):
        if index > 0 and mean != ordered[index - 1][1]:
            rank += 1
        ranked.append((key, rank))
    return ranked


@dataclass(frozen=True)
class Ranked(Generic[K]):
    """One candidate's place in the combined ranking: its dense rank in every score, in the method's order."""

    key: K
    ranks: tuple[int, ...]

    @property
    def score(self) -> int:
        """Total score, the sum of the ranks (official ``rank_C + rank_R``); the smallest is pruned first."""
        return sum(self.ranks)


def rank_candidates(scores: Sequence[Sequence[tuple[K, float]]], descending: Sequence[bool]) -> list[Ranked[K]]:
    """Combine the dense ranks of several scores; most prunable first.

    Args:
        scores: per score, ``(key, mean Δ)`` of the same candidates in candidate enumeration order (official:
            ΔC, then ΔR).
        descending: per score, whether a larger Δ is more prunable (ΔC: a condition number that falls when
            the op goes, True) or a smaller one (ΔR: regions that barely change, False).

    Returns:
        Candidates stably sorted by the summed rank ascending; ties keep the first score's sorted order.
    """
    if not scores or len(scores) != len(descending):
        raise ValueError(f"need one direction per score and at least one score, got {len(scores)} scores and "
                         f"{len(descending)} directions")
    keys = [key for key, _ in scores[0]]
    if len(set(keys)) != len(keys):
        raise ValueError("candidate keys must be unique")
    if any(len(score) != len(keys) or {key for key, _ in score} != set(keys) for score in scores):
        raise ValueError("every score must rank the same candidates")
    ranked = [dense_ranks(score, flag) for score, flag in zip(scores, descending, strict=True)]
    others = [dict(ranks) for ranks in ranked[1:]]
    combined = [Ranked(key, (rank, *(ranks[key] for ranks in others))) for key, rank in ranked[0]]
    return sorted(combined, key=lambda item: item.score)


def select_op_removals(ranking: Sequence[Ranked[K]], edge_of: Callable[[K], Hashable]) -> list[K]:
    """Per edge, the first candidate of that edge in the ranking (one op removed per edge).

    Args:
        ranking: output of :func:`rank_candidates`.
        edge_of: maps a candidate key to its edge identity (e.g. ``(cell_type, edge)``).

    Returns:
        The removed keys, in ranking order.
    """
    seen: set[Hashable] = set()
    removed: list[K] = []
    for item in ranking:
        edge = edge_of(item.key)
        if edge not in seen:
            seen.add(edge)
            removed.append(item.key)
    return removed


def select_edge_removals(ranking: Sequence[Ranked[K]], keep: int = 2) -> list[K]:
    """Within one node's group, remove all but the last ``keep`` entries of the ranking."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    return [item.key for item in ranking[: max(len(ranking) - keep, 0)]]

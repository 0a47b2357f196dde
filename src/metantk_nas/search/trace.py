"""The audit trail of a search: one CSV row per (round, candidate, repeat).

Every number that decided a removal is in the trace (both condition numbers, both region
counts, the per-repeat and mean deltas, both ranks, the summed score), so any removal can be
re-derived from ``trace.csv`` alone with :mod:`metantk_nas.search.ranking`. The condition-number and
region columns are always there (empty, Δ and rank 0, for a method without that proxy); every other
proxy of the method adds its own five columns (:func:`proxy_columns`) before ``score``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from metantk_nas.io import write_csv

#: Column order of ``trace.csv`` of the paper's methods (:func:`trace_columns` adds other proxies' columns).
TRACE_COLUMNS: tuple[str, ...] = (
    "stage",  # ops | edges
    "round",  # op round 0..5; the edge stage is the round after the last op round
    "cell",  # normal | reduce
    "edge",  # 0..8 (official edge order)
    "op",  # operation removed by this candidate (edge stage: the edge's single op)
    "repeat",  # 0..repeats-1
    "cond_origin",
    "cond_candidate",
    "regions_origin",
    "regions_candidate",
    "delta_c",  # this repeat's ΔC (rounded when delta=relative)
    "delta_r",  # this repeat's ΔR
    "delta_c_mean",  # mean over repeats: the value that is ranked
    "delta_r_mean",
    "rank_c",
    "rank_r",
    "score",  # the sum of the ranks of the method's proxies; the smallest is removed first
    "removed",  # 1 if this candidate was removed, else 0
)
_HEAD, _TAIL = TRACE_COLUMNS[:-2], TRACE_COLUMNS[-2:]


def proxy_columns(proxy: str) -> tuple[str, ...]:
    """The columns of a proxy other than the condition number and linear regions (``grad-norm`` → ``grad_norm_…``)."""
    stem = proxy.replace("-", "_")
    return (f"{stem}_origin", f"{stem}_candidate", f"delta_{stem}", f"delta_{stem}_mean", f"rank_{stem}")


def trace_columns(extra_proxies: Sequence[str] = ()) -> tuple[str, ...]:
    """Column order of a ``trace.csv`` whose method also ranks by ``extra_proxies``."""
    return (*_HEAD, *(column for proxy in extra_proxies for column in proxy_columns(proxy)), *_TAIL)


def write_trace(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], extra_proxies: Sequence[str] = ()) -> None:
    """Write ``trace.csv`` atomically (a missing or extra column is an error)."""
    write_csv(path, trace_columns(extra_proxies), rows)


def read_trace(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read ``trace.csv`` back (values as strings), checking the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = tuple(reader.fieldnames or ())
        extra = [name.removesuffix("_origin") for name in header[len(_HEAD):-len(_TAIL):5]]
        if header != trace_columns(extra):
            raise ValueError(f"{path}: unexpected trace header {list(header)}; expected {list(TRACE_COLUMNS)} "
                             "with five columns per other proxy before 'score'")
        return list(reader)

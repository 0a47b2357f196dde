"""The audit trail of a search: one CSV row per (round, candidate, repeat).

Every number that decided a removal is in the trace (both condition numbers, both region
counts, the per-repeat and mean deltas, both ranks, the summed score), so any removal can be
re-derived from ``trace.csv`` alone with :mod:`metantk_nas.search.ranking`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from typing import Any

from metantk_nas.io import write_csv

#: Column order of ``trace.csv``.
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
    "score",  # rank_c + rank_r; the smallest is removed first
    "removed",  # 1 if this candidate was removed, else 0
)


def write_trace(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``trace.csv`` atomically (a missing or extra column is an error)."""
    write_csv(path, TRACE_COLUMNS, rows)


def read_trace(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read ``trace.csv`` back (values as strings), checking the header."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != TRACE_COLUMNS:
            raise ValueError(f"{path}: unexpected trace header {reader.fieldnames}; expected {list(TRACE_COLUMNS)}")
        return list(reader)

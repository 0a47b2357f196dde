"""Read the result files of one workflow run folder into a single record.

A run folder is ``results/{dataset}/{cells}cell/{method}/seed{seed}`` with ``search/search.json``,
``train/train.json`` and ``evaluate/{1,5}shot.json`` inside; the path carries the experiment, the
files carry the numbers. Reading fails with the file and key named, so a table is never built from
half a run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metantk_nas.io import read_json

#: ``.../{dataset}/{cells}cell/{method}/seed{seed}`` at the end of a run folder path.
RUN_PATTERN = re.compile(r"(?P<dataset>[^/]+)/(?P<cells>\d+)cell/(?P<method>[^/]+)/seed(?P<seed>\d+)/?$")
SHOTS = (1, 5)


@dataclass(frozen=True)
class RunResult:
    """The numbers of one search-train-evaluate run that the tables and figures need."""

    path: Path
    dataset: str
    cells: int
    method: str
    seed: int
    genotype: str
    search: dict[str, Any]  # search.json's config (kernel, lam_tau, reg, ...)
    search_hours: float  # wall-clock hours of the search on its device
    search_device: str  # "cuda" or "cpu"
    train: dict[str, Any]  # train.json's config (epochs, lr, batch_size, ...)
    params: int  # parameters of the trained network (with its training-class head)
    accuracy: dict[int, float]  # shots -> mean test accuracy over tasks, in %

    @property
    def key(self) -> tuple[str, int, str]:
        """(method, dataset, cells): the row a run belongs to."""
        return (self.method, self.dataset, self.cells)


def parse_run_path(path: str | Path) -> dict[str, Any]:
    """Dataset, cells, method and seed encoded in a run folder path."""
    match = RUN_PATTERN.search(Path(path).as_posix())
    if match is None:
        raise ValueError(f"{path}: not a run folder; expected .../DATASET/<cells>cell/METHOD/seed<seed>")
    parts = match.groupdict()
    return {"dataset": parts["dataset"], "cells": int(parts["cells"]), "method": parts["method"],
            "seed": int(parts["seed"])}


def _key(payload: dict[str, Any], key: str, path: Path) -> Any:
    if key not in payload:
        raise KeyError(f"{path}: missing key {key!r}")
    return payload[key]


def _percent(value: Any, path: Path, key: str) -> float:
    """An accuracy as a percentage; the evaluation writes fractions in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: key {key!r} must be a finite number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{path}: key {key!r} must be a fraction in [0, 1], got {value!r}")
    return 100.0 * float(value)


def read_run(path: str | Path) -> RunResult:
    """Read one run folder (see the module docstring)."""
    root = Path(path)
    where = parse_run_path(root)
    search_file = root / "search" / "search.json"
    search = read_json(search_file)
    device = _key(search, "device", search_file)
    hours = _key(search, "gpu_hours" if device == "cuda" else "cpu_hours", search_file)
    train_file = root / "train" / "train.json"
    train = read_json(train_file)
    accuracy = {}
    for shot in SHOTS:
        shot_file = root / "evaluate" / f"{shot}shot.json"
        accuracy[shot] = _percent(_key(read_json(shot_file), "mean", shot_file), shot_file, "mean")
    return RunResult(
        path=root,
        genotype=str(_key(search, "genotype", search_file)),
        search=dict(_key(search, "config", search_file)),
        search_hours=float(hours),
        search_device=str(device),
        train=dict(_key(train, "config", train_file)),
        params=int(_key(train, "parameters", train_file)),
        accuracy=accuracy,
        **where,
    )

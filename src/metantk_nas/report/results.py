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


#: ``.../{dataset}/baselines/{baseline}/seed{seed}`` at the end of a baseline run folder path.
BASELINE_PATTERN = re.compile(r"(?P<dataset>[^/]+)/baselines/(?P<baseline>[^/]+)/seed(?P<seed>\d+)/?$")


@dataclass(frozen=True)
class BaselineResult:
    """The numbers of one Table 1 baseline run (``metantk-nas baseline``) that Table 1 needs."""

    path: Path
    dataset: str
    baseline: str
    seed: int
    backbone: dict[str, Any]  # the model's BackboneSpec record
    train: dict[str, Any]  # the training settings (train.json's config)
    params: int  # parameters of the network its protocol uses
    train_hours: float  # wall-clock hours of all its models' training
    train_device: str
    protocol: str  # what ``accuracy`` measures: maml, anil, svm or probe
    accuracy: dict[int, float]  # shots -> its own protocol's mean test accuracy, in %
    probe: dict[int, float]  # shots -> the cells' linear probe on its features, in %


def read_baseline(path: str | Path) -> BaselineResult:
    """Read one baseline run folder: ``train-*/train.json``, ``evaluate/`` (own protocol) and ``probe/``."""
    root = Path(path)
    match = BASELINE_PATTERN.search(root.as_posix())
    if match is None:
        raise ValueError(f"{path}: not a baseline run folder; expected .../DATASET/baselines/NAME/seed<seed>")
    summaries = sorted(root.glob("train-*/train.json"))
    if not summaries:
        raise FileNotFoundError(f"{root}: no train-*/train.json (train the baseline first)")
    trains = [(file, read_json(file)) for file in summaries]
    first_file, first = trains[0]
    probe = {shot: _percent(_key(read_json(root / "probe" / f"{shot}shot.json"), "mean", root / "probe"),
                            root / "probe" / f"{shot}shot.json", "mean") for shot in SHOTS}
    own_dir = root / "evaluate"
    protocol, accuracy = "probe", dict(probe)
    if own_dir.is_dir():
        accuracy = {}
        for shot in SHOTS:
            shot_file = own_dir / f"{shot}shot.json"
            payload = read_json(shot_file)
            protocol = str(_key(payload, "protocol", shot_file))
            accuracy[shot] = _percent(_key(payload, "mean", shot_file), shot_file, "mean")
    backbone = first.get("backbone") or _key(first, "backbone", first_file)
    return BaselineResult(
        path=root, dataset=match["dataset"], baseline=match["baseline"], seed=int(match["seed"]),
        backbone=dict(backbone), train=dict(_key(first, "config", first_file)),
        params=int(_key(first, "parameters", first_file)),
        train_hours=sum(float(_key(data, "total_seconds", file)) for file, data in trains) / 3600,
        train_device=_device(first),
        protocol=protocol, accuracy=accuracy, probe=probe,
    )


def _device(summary: dict[str, Any]) -> str:
    """``cuda`` or ``cpu``: the summary's own ``device``, else its provenance record's."""
    if isinstance(summary.get("device"), str):
        return summary["device"]
    return str(summary.get("provenance", {}).get("device", {}).get("device", "?"))

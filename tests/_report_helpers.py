"""Synthetic run folders in the workflow's layout, for the report tests."""

from __future__ import annotations

from pathlib import Path

from metantk_nas.io import write_json
from metantk_nas.search.trace import TRACE_COLUMNS, write_trace

GENOTYPE = "Genotype(normal=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], [('conv_3x3', 0), ('sep_conv_3x3', 2)]], normal_concat=[2, 3, 4], reduce=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('conv_1x5_5x1', 1), ('dil_conv_3x3', 2)], [('dil_conv_3x3', 2), ('dil_conv_3x3', 3)]], reduce_concat=[2, 3, 4])"


def make_run(results: Path, dataset: str, cells: int, method: str, seed: int, *, acc1: float, acc5: float,
             params: int, hours: float, device: str = "cpu", rounds: int = 0) -> Path:
    """Write search.json, trace.csv, train.json and {1,5}shot.json of one run; returns its folder."""
    run = results / dataset / f"{cells}cell" / method / f"seed{seed}"
    write_json(run / "search" / "search.json", {
        "method": "fixed" if method == "metanas" else method, "genotype": GENOTYPE, "seed": seed,
        "device": device, "wall_seconds": hours * 3600,
        "gpu_hours": hours if device == "cuda" else 0.0, "cpu_hours": 0.0 if device == "cuda" else hours,
        "config": {"kernel": "maml", "lam_tau": "inf", "reg": 0.001, "cells": cells,
                   "genotype": "metanas/in-v2" if method == "metanas" else None},
    })
    rows = [{column: 0 for column in TRACE_COLUMNS} | {
        "stage": "ops", "round": round_index, "cell": "normal", "op": "conv_3x3", "repeat": repeat,
        "cond_origin": 1000.0 / (round_index + 1) + repeat, "regions_origin": 500 - 10 * round_index,
    } for round_index in range(rounds) for repeat in range(2)]
    write_trace(run / "search" / "trace.csv", rows)
    write_json(run / "train" / "train.json", {
        "parameters": params,
        "config": {"epochs": 100, "lr": 0.02, "decay_epochs": [60, 80], "decay_rate": 0.1, "batch_size": 64,
                   "drop_path": 0.2},
    })
    write_json(run / "evaluate" / "1shot.json", {"mean": acc1 / 100, "ci95": 0.008})
    write_json(run / "evaluate" / "5shot.json", {"mean": acc5 / 100, "ci95": 0.006})
    return run


def make_baseline(results: Path, dataset: str, name: str, seed: int, *, own: tuple[float, float] | None,
                  probe: tuple[float, float], params: int, per_shot: bool, seconds: float = 60.0) -> Path:
    """Write a baseline run folder: train-*/train.json, evaluate/ (own protocol, None: RFS) and probe/."""
    run = results / dataset / "baselines" / name / f"seed{seed}"
    backbone = {"backbone": "conv4" if name in ("maml", "anil") else "resnet12", "width": 1.0, "drop_rate": 0.1}
    for regime in ("1shot", "5shot") if per_shot else ("all",):
        write_json(run / f"train-{regime}" / "train.json", {
            "backbone": backbone, "parameters": params, "total_seconds": seconds, "device": "cpu",
            "config": {"meta_steps": 10, "meta_batch_1shot": 4, "meta_batch_5shot": 2, "inner_steps": 5,
                       "inner_lr": 0.01, "meta_lr": 0.001, "inner_steps_test": 10, "epochs": 3, "lr": 0.05},
        })
    for shot, value in zip((1, 5), probe):
        write_json(run / "probe" / f"{shot}shot.json", {"mean": value / 100})
    if own is not None:
        protocol = {"maml": "maml", "anil": "anil", "metaoptnet": "svm"}[name]
        for shot, value in zip((1, 5), own):
            write_json(run / "evaluate" / f"{shot}shot.json", {"mean": value / 100, "protocol": protocol})
    return run

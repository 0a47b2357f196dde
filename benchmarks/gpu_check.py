"""GPU check: correctness on CUDA against the CPU, and the paper-size costs, in one command and one JSON.

    make gpu-check                                    # pytest -m cuda, then this script
    python benchmarks/gpu_check.py --out gpu-check.json
    python benchmarks/gpu_check.py --quick            # the search's first round only, extrapolated
    python benchmarks/gpu_check.py --tiny --device cpu   # the same code at toy sizes (a smoke test anywhere)

No dataset is needed: the search and the kernel check use 32×32 embedded glyphs (4 images per class),
training and evaluation a store of random 84×84 pixels (their cost does not depend on the content, and
rendering 84×84 glyphs would take minutes). Every section runs with torch's backend flags as a fresh
process has them (the search and training change them process-wide). Measured:

1. **Kernels.** The empirical NTK and the MetaNTK condition numbers of the paper-size search supernet
   (C=48, 5 cells, all ops, GroupNorm, PyTorch default init) on 30 glyph images (MetaNTK: 3 tasks of 5
   queries + 5 supports), on the GPU in float32 with TF32 off for each backend, and for the default
   backend as the search runs (cuDNN's TF32 convolutions on, torch's default), against ``gram`` in
   float64 on the CPU with the same weights and images. Tolerance: relative error ≤ max(1e-3, 3·e), e the
   error of the CPU's own float32 result (default backend). 1e-3 is the resolution the search ranks at
   (relative ΔC rounded to 3 decimals per repeat); but an ill-conditioned kernel amplifies float32 rounding
   (Weyl: λ_min moves by up to δ·λ_max, so κ by about (κ+1)·δ; MetaNTK also inverts K_SS), and on the CPU
   itself a toy supernet's channels_last float32 kernel is off by 1e-3 in κ: the GPU may not be more than
   3× worse than the CPU result the project already accepts.
2. **Search.** ``run_search`` with the official settings (3 repeats, 3 tasks, 30 NTK images, 32×32,
   linear regions 3×1000) in both pairings, timed end to end: GPU-minutes and the speed-up over the
   paper's 1.54 V100-hours. ``--quick`` stops each search after its first round and extrapolates by
   candidates: an upper bound, since later rounds' candidates have fewer ops alive.
3. **Training.** ``train`` of ``metantk-nas/mini-5cell-1`` (C=48, 5 cells) at 84×84, batch 64, 2 epochs,
   with and without bf16 AMP: images/s of the second epoch (the first includes cuDNN's autotuning); the
   loss must be finite.
4. **Evaluation.** 1000 tasks, 1- and 5-shot (50 queries, 5 augmented supports), with the network trained
   with AMP: the fast evaluation (float32 and bf16) against the per-task implementation of
   ``benchmarks/evaluate.py`` on the same GPU. Mean accuracies must agree within 0.2 points (float32;
   the CPU measured 0.01) and 1.0 point (bf16 features move by ~0.4 %: more near-ties flip; about the
   95 % half-interval of a 1000-task mean), or two flipped query predictions if that is more (toy sizes).

Exit status: 0 when every check passes, 1 when one fails, 2 without a usable CUDA device (one line).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

# benchmarks/ is not a package: this script's folder is sys.path[0], so its siblings import by name.
import evaluate as evaluate_benchmark
from search import PAPER_GPU_HOURS

from metantk_nas import provenance
from metantk_nas.data.glyphs import generate_glyphs
from metantk_nas.data.store import open_split, write_store
from metantk_nas.data.transforms import search_transform
from metantk_nas.device import check_device, select_device, visible_gpu_ids
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.io import write_json
from metantk_nas.kernels import make_head, metantk_condition, ntk_condition
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import initial_masks, op_candidates, remaining_candidates, run_search
from metantk_nas.search.measure import initialise
from metantk_nas.space import PRIMITIVES, SearchSupernet, load_genotype
from metantk_nas.space.checkpoint import load_model
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train

BACKENDS = ("loop", "opacus", "func", "gram")
GENOTYPE = "metantk-nas/mini-5cell-1"
#: Relative error of a condition number allowed on the device: the search's rounding, or this many times the
#: error of the CPU's own float32 result, whichever is larger.
CONDITION_TOLERANCE = 1e-3
CPU_ERROR_FACTOR = 3.0
#: Largest difference of mean accuracy (points) between the fast and the per-task evaluation.
ACCURACY_TOLERANCE = {"float32": 0.2, "bf16": 1.0}
#: Target wall time of the whole check on one modern GPU.
BUDGET_MINUTES = 8.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Sizes of one mode: the paper's, or toy sizes that run the same code on a CPU."""

    channels: int  # of the trained network
    cells: int
    train_resolution: int
    train_classes: int
    train_per_class: int
    test_classes: int
    test_per_class: int
    batch_size: int
    search: dict[str, Any]  # SearchConfig overrides of the official settings (also the kernel check's supernet)
    evaluate: dict[str, Any]  # EvalConfig overrides of the official protocol


PAPER = Sizes(48, 5, 84, 64, 100, 20, 60, 64, {}, {})
TINY = Sizes(8, 3, 16, 4, 8, 6, 8, 16,
             {"channels": 8, "cells": 2, "resolution": 8, "ops": ("skip_connect", "avg_pool_3x3BN"), "repeats": 1,
              "tasks": 1, "region_batches": 1, "region_batch_size": 16},
             {"tasks": 4, "queries": 2, "n_aug": 1})


@dataclasses.dataclass
class Row:
    """One line of the table: a measurement, or a check when ``passed`` is set."""

    section: str
    name: str
    value: float
    unit: str
    reference: str = ""
    ratio: float | None = None
    tolerance: float | None = None
    passed: bool | None = None


class _StopAfterFirstRound(Exception):
    """Raised from ``on_round_end`` by ``--quick``."""


def no_cuda_message() -> str:
    """The one line printed without a usable CUDA device, naming why."""
    if torch.version.cuda is None:
        reason = "built without CUDA"
    elif "CUDA_VISIBLE_DEVICES" in os.environ and not visible_gpu_ids():
        reason = f"CUDA {torch.version.cuda} build, CUDA_VISIBLE_DEVICES hides every GPU"
    else:
        reason = f"CUDA {torch.version.cuda} build, driver or GPU not found"
    return f"gpu-check: error: no CUDA device (torch {torch.__version__}, {reason}): run it on a GPU machine"


@contextlib.contextmanager
def fresh_backend_flags(tf32: bool | None = None) -> Iterator[None]:
    """torch's backend flags as a fresh process has them (``tf32``: force TF32 on/off), restored afterwards.

    The search sets ``cudnn.deterministic`` and training turns on TF32 and ``cudnn.benchmark`` for the whole
    process; each section here must see what its own ``metantk-nas`` process would.
    """
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
    torch.backends.cudnn.allow_tf32 = True if tf32 is None else tf32
    torch.backends.cuda.matmul.allow_tf32 = False if tf32 is None else tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = flags


def synthetic_store(root: Path, sizes: Sizes, seed: int = 0) -> Path:
    """Train and test splits at the training resolution whose images are a random class prototype half
    covered by random noise: free to make, learnable in two epochs, so that the evaluation's classifiers
    have margins and the fast and per-task evaluations can be compared on accuracy."""
    rng = np.random.default_rng(seed)
    side = sizes.train_resolution
    splits = {}
    for split, classes, per_class in (("train", sizes.train_classes, sizes.train_per_class),
                                      ("test", sizes.test_classes, sizes.test_per_class)):
        prototypes = rng.integers(0, 128, size=(classes, 1, side, side, 3), dtype=np.uint8)
        noise = rng.integers(0, 128, size=(classes, per_class, side, side, 3), dtype=np.uint8)
        images = (prototypes + noise).reshape(classes * per_class, side, side, 3)
        labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
        splits[split] = (images, labels, [f"{split}-{c}" for c in range(classes)])
    return write_store(root, "synthetic", "synthetic", splits, {})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference)


def check_kernels(device: torch.device, sizes: Sizes, glyphs: Path) -> tuple[list[Row], dict[str, Any]]:
    """NTK and MetaNTK condition numbers on the device (each backend) against float64 on the CPU."""
    cfg = SearchConfig(**sizes.search)
    train_split = open_split(glyphs, "train")
    images = search_transform(np.array(train_split.images[:30]), False, None, size=cfg.resolution, device="cpu")
    net = SearchSupernet(C=cfg.channels, n_cells=cfg.cells, num_classes=train_split.num_classes, norm="group")
    masks = initial_masks(cfg.ops)
    net.set_masks(masks["normal"], masks["reduce"])
    initialise(net.train(), 0, cfg.init)
    head = make_head(net.num_features, cfg.ways, torch.Generator().manual_seed(1))

    def conditions(model: torch.nn.Module, fresh_head: torch.nn.Module, x: torch.Tensor, backend: str) -> dict:
        started = time.perf_counter()
        tasks = x.reshape(3, 2, 5, *x.shape[1:])  # 3 tasks: 5 queries, then 5 supports
        values = {"ntk": ntk_condition(model, x, backend=backend).value,
                  "metantk": metantk_condition(model, tasks[:, 0], tasks[:, 1], head=fresh_head, backend=backend).value}
        _sync(x.device)
        return {**values, "seconds": time.perf_counter() - started}

    reference = conditions(copy.deepcopy(net).double(), copy.deepcopy(head).double(), images.double(), "gram")
    cpu_float32 = conditions(net, head, images, "auto")
    on_device = (copy.deepcopy(net).to(device), copy.deepcopy(head).to(device), images.to(device))
    runs = {}
    with fresh_backend_flags(tf32=False):
        for backend in BACKENDS:
            runs[f"{backend} float32"] = conditions(*on_device, backend)
    with fresh_backend_flags():
        runs["auto, as the search runs (cuDNN TF32)"] = conditions(*on_device, "auto")
    rows = []
    for kind in ("ntk", "metantk"):
        kappa = reference[kind]
        tolerance = max(CONDITION_TOLERANCE, CPU_ERROR_FACTOR * _relative(cpu_float32[kind], kappa))
        for name, run in runs.items():
            error = _relative(run[kind], kappa)
            rows.append(Row("kernels", f"{'NTK' if kind == 'ntk' else 'MetaNTK'} κ, {name}", error, "rel. error",
                            f"CPU float64 κ={kappa:.6g}", tolerance=tolerance, passed=error <= tolerance))
    details = {"reference_cpu_float64": reference, "cpu_float32": cpu_float32, "device": runs,
               "images": int(images.shape[0]), "config": cfg.to_dict()}
    return rows, details


def time_search(device: torch.device, sizes: Sizes, glyphs: Path, work: Path, quick: bool
                ) -> tuple[list[Row], dict[str, Any]]:
    """Both pairings of the search end to end (``quick``: the first round, extrapolated by candidates)."""
    paper_minutes = PAPER_GPU_HOURS * 60
    unit = "GPU-min" if device.type == "cuda" else "CPU-min"
    rows, details = [], {}

    def stop(rounds: int) -> None:
        raise _StopAfterFirstRound

    for pairing in ("official", "paired"):
        cfg = SearchConfig(**{**sizes.search, "pairing": pairing, "device": str(device)})
        masks = initial_masks(cfg.ops)
        total, first = remaining_candidates(masks, False), len(op_candidates(masks))
        out = work / f"search-{pairing}"
        started = time.perf_counter()
        with fresh_backend_flags():
            try:
                run_search(cfg, glyphs, out, work / f"search-{pairing}-state",
                           on_round_end=stop if quick else None, progress=False)
            except _StopAfterFirstRound:
                pass
        seconds = time.perf_counter() - started
        minutes = seconds / 60 * (total / first if quick else 1)
        label = f"search {pairing}" + (" (round 1 × candidates: upper bound)" if quick else "")
        summary = {} if quick else json.loads((out / "search.json").read_text())
        details[pairing] = {"seconds": seconds, "minutes_full_search": minutes, "extrapolated": quick,
                            "candidates_total": total, "candidates_timed": first if quick else total,
                            "config": cfg.to_dict(),
                            **{k: summary[k] for k in ("genotype", "kernel_evaluations", "region_evaluations",
                                                       "wall_seconds") if k in summary}}
        rows.append(Row("search", label, minutes, unit, f"paper {PAPER_GPU_HOURS} V100-h = {paper_minutes:.1f} min",
                        ratio=paper_minutes / minutes if device.type == "cuda" else None))
    return rows, details


def time_training(device: torch.device, sizes: Sizes, store: Path, work: Path
                  ) -> tuple[list[Row], dict[str, Any], Path]:
    """Throughput of ``train`` with AMP off and on; returns the AMP model for the evaluation."""
    rows, details, model_path = [], {}, None
    throughput = {}
    for amp in (False, True):
        cfg = TrainConfig(epochs=2, decay_epochs=(), batch_size=sizes.batch_size, channels=sizes.channels,
                          cells=sizes.cells, device=str(device), amp=amp)
        with fresh_backend_flags():
            model_path = train(cfg, load_genotype(GENOTYPE), store, work / f"train-amp-{'on' if amp else 'off'}",
                               progress=False)
        history = json.loads((model_path.parent / "train.json").read_text())
        final = history["final"]
        name = f"AMP {'on (bf16)' if amp else 'off'}"
        throughput[amp] = final["images_per_s"]
        details[name] = {"final_epoch": final, "parameters": history["parameters"], "config": cfg.to_dict()}
        rows.append(Row("training", f"train {sizes.train_resolution}×{sizes.train_resolution}, {name}",
                        final["images_per_s"], "images/s",
                        "AMP off" if amp else "", ratio=throughput[True] / throughput[False] if amp else None))
        rows.append(Row("training", f"training loss finite, {name}", final["loss"], "loss", passed=math.isfinite(final["loss"])))
    return rows, details, model_path


def time_evaluation(device: torch.device, sizes: Sizes, store: Path, model_path: Path
                    ) -> tuple[list[Row], dict[str, Any]]:
    """The fast evaluation (float32 and bf16) against the per-task loop, 1- and 5-shot, on the same device."""
    model, meta = load_model(model_path, device)
    split = open_split(store, "test")
    normalization, padding = meta["normalization"], meta["config"].get("crop_padding", 8)
    cfg = EvalConfig(device=str(device), **sizes.evaluate)
    two_predictions = 200 / (cfg.tasks * cfg.n_way * cfg.queries)  # points: below that, ties broken differently
    rows, details = [], {}
    with fresh_backend_flags():
        for shot in cfg.shots:
            per_task, per_task_s = evaluate_benchmark.per_task(cfg, shot, model, normalization, split.images,
                                                               split.labels, padding, device)
            per_task_mean = float(np.mean(per_task))
            details[f"{shot}-shot per-task"] = {"seconds": per_task_s, "mean_accuracy": per_task_mean}
            for precision in ("float32", "bf16"):
                variant = dataclasses.replace(cfg, amp=precision == "bf16")
                result, seconds = evaluate_benchmark.fast(variant, shot, model, normalization, split.images,
                                                          split.labels, padding, device)
                difference = 100 * abs(result["mean"] - per_task_mean)
                tolerance = max(ACCURACY_TOLERANCE[precision], two_predictions)
                details[f"{shot}-shot fast {precision}"] = {
                    "seconds": seconds, "mean_accuracy": result["mean"], "timing": result["timing"],
                    "tasks_with_identical_accuracy": float(np.mean(np.isclose(result["accuracies"], per_task)))}
                name = f"evaluate {cfg.tasks} tasks {shot}-shot, {precision}"
                rows.append(Row("evaluation", name, seconds, "s", f"per-task {per_task_s:.1f} s",
                                ratio=per_task_s / seconds))
                rows.append(Row("evaluation", f"{name}: accuracy vs per-task", difference, "points",
                                f"per-task {100 * per_task_mean:.2f} %", tolerance=tolerance,
                                passed=difference <= tolerance))
    return rows, details


def table(rows: list[Row]) -> str:
    """The rows as an aligned text table (a check's verdict names its tolerance)."""
    lines = [("measurement", "value", "unit", "reference", "ratio", "check")]
    for row in rows:
        check = "" if row.passed is None else f"{'pass' if row.passed else 'FAIL'}" + (
            f" (≤ {row.tolerance:g})" if row.tolerance is not None else "")
        lines.append((row.name, f"{row.value:.4g}", row.unit, row.reference,
                      "" if row.ratio is None else f"{row.ratio:.2f}×", check))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check.json", help="the JSON result (written atomically)")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N (cpu only with --tiny)")
    parser.add_argument("--quick", action="store_true",
                        help="time only the first round of each search and extrapolate (an upper bound)")
    parser.add_argument("--skip-search", action="store_true", help="no search timing")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, the same code (a smoke test of this script)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--check-cuda", action="store_true", help="only check that a CUDA device is usable")
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.device == "cpu" and not args.tiny:
        parser.error("--device cpu runs only with --tiny (the paper sizes take hours on a CPU)")
    if args.device == "auto":
        parser.error("--device auto could fall back to the CPU: name cuda, cuda:N or (with --tiny) cpu")
    with warnings.catch_warnings():  # a broken driver warns on stderr: the one line below says it
        warnings.simplefilter("ignore")
        try:
            device = select_device(args.device)
        except ValueError:
            print(no_cuda_message(), file=sys.stderr)
            return 2
    if args.check_cuda:
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)

    sizes = TINY if args.tiny else PAPER
    started = time.perf_counter()
    rows: list[Row] = []
    sections: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        glyphs = generate_glyphs(work / "glyphs", image_size=SearchConfig(**sizes.search).resolution,
                                 images_per_class=4, seed=0)
        store = synthetic_store(work / "synthetic", sizes)
        model_path: list[Path] = []

        def training() -> tuple[list[Row], dict[str, Any]]:
            section_rows, details, path = time_training(device, sizes, store, work)
            model_path.append(path)
            return section_rows, details

        steps = [("kernels", lambda: check_kernels(device, sizes, glyphs))]
        if not args.skip_search:
            steps.append(("search", lambda: time_search(device, sizes, glyphs, work, args.quick)))
        steps += [("training", training),
                  ("evaluation", lambda: time_evaluation(device, sizes, store, model_path[0]))]
        for name, step in steps:
            print(f"gpu-check: {name} ...", file=sys.stderr, flush=True)
            section_started = time.perf_counter()
            section_rows, sections[name] = step()
            sections[name]["section_seconds"] = time.perf_counter() - section_started
            print(f"gpu-check: {name} took {sections[name]['section_seconds']:.1f} s", file=sys.stderr, flush=True)
            rows += section_rows
    minutes = (time.perf_counter() - started) / 60
    rows.append(Row("total", "gpu-check wall time", minutes, "min", f"budget {BUDGET_MINUTES:g} min",
                    ratio=minutes / BUDGET_MINUTES))
    passed = all(row.passed is not False for row in rows)
    on_gpu = device.type == "cuda"
    write_json(args.out, {
        "benchmark": "gpu-check", "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if on_gpu else None,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if on_gpu else None,
        "passed": passed, "minutes": minutes, "rows": [dataclasses.asdict(row) for row in rows],
        "sections": sections, "sizes": dataclasses.asdict(sizes),
        "provenance": provenance.collect(vars(args), 0),
    })
    print(table(rows))
    print(f"gpu-check: {'all checks passed' if passed else 'CHECKS FAILED'}; wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: cost of the pruning search on the paper-size supernet, projected to a full search.

    python benchmarks/search.py                      # C=48, 5 cells, 32×32, 3 tasks × 10 images (30)
    python benchmarks/search.py --quick              # smoke mode: C=8
    python benchmarks/search.py --dataset STORE --device cuda --out bench.json

A full search is 6 op rounds (18·k candidates in the round where every edge holds k = 7..2 ops:
486 in all) plus 14 edge candidates, each measured ``repeats`` times. The cost of one MetaNTK
evaluation depends on how many ops are alive, so it is measured on masks with k = 7, 4 and 1 ops per
edge and interpolated linearly in k; the linear-region measurement likewise. The projection counts the
evaluations each pairing mode makes:

* official: origin and candidate per candidate and repeat → 2·R·(486 + 14) kernel evaluations;
* paired: the origin once per round (edge stage: per node group) and repeat → R·(486 + 6 + 14 + 4).

GPU-hours are projected only from a run on a GPU; on the CPU they are reported as "not measured".
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from metantk_nas import provenance
from metantk_nas.data.glyphs import generate_glyphs
from metantk_nas.data.store import open_split
from metantk_nas.device import select_device
from metantk_nas.io import write_json
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import CELL_TYPES, PAPER_EDGE_CANDIDATES, PAPER_OP_CANDIDATES
from metantk_nas.search.measure import Measurer
from metantk_nas.space import PRIMITIVES

#: Paper Table 1 search cost, mini-ImageNet 5 cells (V100 GPU-hours).
PAPER_GPU_HOURS = 1.54
#: Alive ops per edge in the op rounds, and in the edge stage.
ROUND_DENSITIES = (7, 6, 5, 4, 3, 2)
EDGE_DENSITY = 1
#: Node groups with more than 2 inputs per cell type (nodes 3 and 4): the paired edge-stage origins.
EDGE_GROUPS = 2 * len(CELL_TYPES)
MEASURED_DENSITIES = (7, 4, 1)
assert sum(18 * k for k in ROUND_DENSITIES) == PAPER_OP_CANDIDATES


def masks_with(k: int) -> dict[str, torch.Tensor]:
    """Both cell types with the first ``k`` primitives alive on every edge."""
    mask = torch.zeros(9, len(PRIMITIVES), dtype=torch.bool)
    mask[:, :k] = True
    return {cell: mask.clone() for cell in CELL_TYPES}


def timed(fn, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls (CUDA synchronised)."""
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def interpolate(costs: dict[int, float], k: int) -> float:
    ks = sorted(costs)
    return float(np.interp(k, ks, [costs[x] for x in ks]))


def project(kernel: dict[int, float], regions: dict[int, float], repeats: int) -> dict[str, dict[str, float]]:
    """Projected seconds and evaluation counts of a full search in both pairing modes."""
    out = {}
    for mode in ("official", "paired"):
        seconds, kernel_evals, region_evals = 0.0, 0, 0
        stages = [(18 * k, k, 1) for k in ROUND_DENSITIES] + [(PAPER_EDGE_CANDIDATES, EDGE_DENSITY, EDGE_GROUPS)]
        for candidates, k, origins in stages:
            evals = repeats * (2 * candidates if mode == "official" else candidates + origins)
            seconds += evals * (kernel[k] if k in kernel else interpolate(kernel, k))
            seconds += evals * (regions[k] if k in regions else interpolate(regions, k))
            kernel_evals += evals
            region_evals += evals
        out[mode] = {"seconds": seconds, "hours": seconds / 3600, "kernel_evaluations": kernel_evals,
                     "region_evaluations": region_evals}
    out["paired_over_official_kernel_evaluations"] = (
        out["paired"]["kernel_evaluations"] / out["official"]["kernel_evaluations"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="prepared store (default: a small 32×32 glyph store in a temp folder)")
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--evals", type=int, default=2, help="timed evaluations per density (after one warm-up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: C=8, one evaluation per density")
    parser.add_argument("--out", default="benchmarks/out/search.json")
    args = parser.parse_args()
    if args.quick:
        args.channels, args.evals = 8, 1

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    cfg = SearchConfig(channels=args.channels, cells=args.cells, device=str(device), backend=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(args.dataset) if args.dataset else generate_glyphs(Path(tmp) / "glyphs", image_size=32,
                                                                         images_per_class=4, seed=0)
        train = open_split(store, "train")
        measurer = Measurer(cfg, "metantk", train, device)
        measurer.init_supernet(0)
        measurer.init_thin(0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        measurer.condition_number(masks_with(7), 0, 0)  # warm-up (allocator, vmap tracing)
        kernel, regions, conditions = {}, {}, {}
        for k in MEASURED_DENSITIES:
            masks = masks_with(k)
            keys = iter(range(1, 10**6))
            kernel[k] = timed(lambda: conditions.setdefault(k, measurer.condition_number(masks, next(keys), 7)),
                              args.evals)
            inputs = measurer.region_inputs(k)
            regions[k] = timed(lambda: measurer.regions(masks, inputs), max(args.evals, 3))
            regions[k] += timed(lambda: measurer.region_inputs(k), max(args.evals, 3)) / 2  # shared by origin+candidate
            print(f"k={k}: kernel {kernel[k]:.3f} s, regions {regions[k]:.4f} s per evaluation", flush=True)
        peak_cpu_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None

    projection = project(kernel, regions, cfg.repeats)
    per_candidate = {
        "official": cfg.repeats * 2 * (kernel[7] + regions[7]),
        "paired": cfg.repeats * (kernel[7] + regions[7]) * (1 + 1 / (18 * 7)),
    }
    on_gpu = device.type == "cuda"
    result = {
        "benchmark": "search",
        "setting": {"channels": cfg.channels, "cells": cfg.cells, "resolution": cfg.resolution,
                    "images_per_kernel": cfg.tasks * cfg.ways * (cfg.shots + cfg.queries), "repeats": cfg.repeats,
                    "kernel": cfg.kernel, "backend": cfg.backend, "timed_evals_per_density": args.evals,
                    "torch_threads": torch.get_num_threads()},
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "seconds_per_kernel_evaluation": kernel,
        "seconds_per_region_evaluation": regions,
        "seconds_per_candidate_round0": per_candidate,
        "projected_full_search": projection,
        "peak_memory_mib": {"cpu_rss": peak_cpu_mib, "gpu_allocated": peak_gpu_mib},
        "paper_gpu_hours": PAPER_GPU_HOURS,
        "projected_gpu_hours": ({mode: projection[mode]["hours"] for mode in ("official", "paired")}
                                if on_gpu else "not measured (no GPU)"),
        "speedup_vs_paper": ({mode: PAPER_GPU_HOURS / projection[mode]["hours"] for mode in ("official", "paired")}
                             if on_gpu else "not measured (no GPU)"),
        "targets": {
            "paired_kernel_evaluations_at_most_0.55x": projection["paired_over_official_kernel_evaluations"] <= 0.55,
            "gpu_search_10x_faster_than_paper": (PAPER_GPU_HOURS / projection["official"]["hours"] >= 10)
            if on_gpu else "not measured (no GPU)",
        },
        "condition_numbers_seen": {k: c for k, c in conditions.items()},
        "note": "CPU timings on a shared machine are noisy; the projection interpolates per-density costs.",
        "provenance": provenance.collect(vars(args), 0),
    }
    write_json(args.out, result)
    print(f"official: {projection['official']['hours']:.2f} h, paired: {projection['paired']['hours']:.2f} h "
          f"({projection['paired_over_official_kernel_evaluations']:.3f}× kernel evaluations); wrote {args.out}")


if __name__ == "__main__":
    main()

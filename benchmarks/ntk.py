"""Benchmark of the empirical-NTK backends on the paper-size search supernet.

Each backend runs in a fresh subprocess (so ``ru_maxrss`` is that backend's own peak); time and peak
memory are reported as ratios to one batched forward+backward of the same batch measured in the same
subprocess ("floor"). Timing is warm and alternating: the floor and the backend each run once untimed
(allocator, oneDNN primitives, Opacus hooks), then ``--timed`` times in turn; the time ratio is the median
of the ratios of adjacent (floor, backend) pairs, so a drift in machine speed (a shared host) cancels.
Also times one full MetaNTK evaluation (kernel + assembly + eigenvalues).

    python benchmarks/ntk.py                 # C=48, 5 cells, all 7 ops, 30 images at 32×32 and 84×84
    python benchmarks/ntk.py --quick         # smoke mode: C=16, 10 images at 16×16
    python benchmarks/ntk.py --sizes 32 --threads 1 --repeats 3   # rounds alternate the backends

With ``--repeats N`` every round runs each backend once, in turn, so load from other users of a shared
machine spreads over all backends; the summary gives the median and range of each ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time


def _peak_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _measure(spec: dict, queue) -> None:
    """Subprocess body: warm, alternating floor and backend (or full MetaNTK) timings, and peak-memory deltas."""
    import numpy as np
    import torch

    from metantk_nas.device import select_device
    from metantk_nas.kernels import TaskLayout, condition_number, empirical_ntk, make_head, meta_ntk
    from metantk_nas.space import SearchSupernet

    torch.set_num_threads(spec["threads"])
    device = select_device(spec["device"])
    torch.manual_seed(0)
    model = SearchSupernet(C=spec["channels"], n_cells=spec["cells"], num_classes=64, norm="group").to(device).train()
    images = torch.randn(spec["images"], 3, spec["size"], spec["size"], generator=torch.Generator().manual_seed(1)).to(device)
    head = make_head(model.num_features, 5, torch.Generator().manual_seed(2), device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    x = images.contiguous(memory_format=torch.channels_last)

    def floor() -> float:
        start = time.perf_counter()
        features = model.forward_features(x)
        head(features).sum().backward()
        sync()
        seconds = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        return seconds

    def backend() -> tuple[float, object]:
        start = time.perf_counter()
        result = empirical_ntk(model, images, head=head, output=spec["output"], backend=spec["backend"])
        if spec["metantk"]:
            n_tasks = spec["images"] // 10
            phi = meta_ntk(result.theta, result.last_layer, TaskLayout(n_tasks, 5, 5, result.n_outputs))
            condition_number(phi)
        sync()
        return time.perf_counter() - start, result

    base = _peak_bytes(device)
    floor()  # warm-up, and the floor's peak memory
    floor_peak = _peak_bytes(device) - base
    _, result = backend()  # warm-up, and the backend's peak memory
    peak = _peak_bytes(device) - base
    floor_times, backend_times = [], []
    for _ in range(spec["timed"]):
        floor_times.append(floor())
        backend_times.append(backend()[0])
    floor_s, seconds = statistics.median(floor_times), statistics.median(backend_times)
    queue.put({
        "time_ratio": statistics.median(b / f for f, b in zip(floor_times, backend_times, strict=True)),
        "floor_s": floor_s,
        "floor_peak_bytes": floor_peak,
        "seconds": seconds,
        "peak_bytes": peak,
        "floor_times": floor_times,
        "backend_times": backend_times,
        "theta_trace": float(np.trace(result.theta)),
        "param_count": result.param_count,
    })


def _run(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_measure, args=(spec, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/out/ntk.json")
    parser.add_argument("--quick", action="store_true", help="smoke mode: small supernet, small images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 84])
    parser.add_argument("--outputs", nargs="+", default=["sum"], choices=["sum", "logits"])
    parser.add_argument("--backends", nargs="+", default=["loop", "opacus", "func", "gram"])
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all backends (alternating)")
    parser.add_argument("--timed", type=int, default=3, help="warm floor/backend timings per subprocess (median)")
    parser.add_argument("--no-metantk", action="store_true", help="skip the full MetaNTK evaluation")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.images, args.channels = [16], 10, 16

    from metantk_nas.io import write_json
    from metantk_nas.kernels.ntk import DEFAULT_BACKEND
    from metantk_nas.provenance import collect

    rows = []
    methods = [*args.backends, *([] if args.no_metantk else ["metantk"])]
    for size in args.sizes:
        for output in args.outputs:
            common = {"size": size, "output": output, "images": args.images, "channels": args.channels,
                      "cells": args.cells, "threads": args.threads, "device": args.device, "timed": args.timed}
            ratios: dict[str, list[float]] = {m: [] for m in methods}
            seconds: dict[str, list[float]] = {m: [] for m in methods}
            for repeat in range(args.repeats):
                for backend in methods:
                    spec = {**common, "backend": "auto" if backend == "metantk" else backend,
                            "metantk": backend == "metantk"}
                    r = _run(spec)
                    row = {**common, "method": backend, "repeat": repeat, **r,
                           "memory_ratio": r["peak_bytes"] / max(r["floor_peak_bytes"], 1)}
                    rows.append(row)
                    ratios[backend].append(row["time_ratio"])
                    seconds[backend].append(r["seconds"])
                    print(f"{size:>3}px {output:<6} {backend:<8} {r['seconds']:8.2f}s  floor {r['floor_s']:7.2f}s  "
                          f"time×{row['time_ratio']:5.2f}  mem×{row['memory_ratio']:5.2f}  peak {r['peak_bytes'] / 2**30:5.2f} GiB",
                          flush=True)
            for backend in methods:
                print(f"{size:>3}px {output:<6} {backend:<8} time/floor median {statistics.median(ratios[backend]):5.2f} "
                      f"range {min(ratios[backend]):5.2f}–{max(ratios[backend]):5.2f}")
            for backend in ("func", "gram"):
                if backend in seconds and "opacus" in seconds:
                    raw = statistics.median(seconds[backend]) / statistics.median(seconds["opacus"])
                    normalised = statistics.median(ratios[backend]) / statistics.median(ratios["opacus"])
                    print(f"{size:>3}px {output:<6} {backend}/opacus time ratio {normalised:.2f} (each over its own "
                          f"floor; raw seconds {raw:.2f})")
    config = {**vars(args), "default_backend": DEFAULT_BACKEND.value}
    write_json(args.out, {"rows": rows, "config": config, "provenance": collect(config, 0)})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

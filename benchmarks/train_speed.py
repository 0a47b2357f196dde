"""Benchmark: training throughput on the CPU, the two choices behind a CPU-only ``make run``.

    python benchmarks/train_speed.py                  # the embedded default's training step, both checks
    python benchmarks/train_speed.py --cores 4        # the scheduling check for a 4-core machine

1. Memory format: images per second of one training step (forward, backward, SGD) in NCHW against
   channels_last, at one thread and at ``--cores`` (channels_last was 1.2-1.3x faster here, but ``train`` uses
   it on CUDA only: on the CPU oneDNN's channels_last training aborted with a double free at 84x84, C = 4).
2. Scheduling (``profiles/cpu``): the aggregate images per second of ``--cores`` concurrent one-thread
   training processes (what profiles/cpu runs) against one process with ``--cores`` threads (what the
   rules' own thread counts give on a CPU, with GPU jobs one at a time: profiles/local).

The network is the embedded default's (``config/config.yaml`` resolved by ``metantk_nas.plan``: channels,
cells, image size, batch size, drop path) with the MetaNAS cell and 64 classes. Every timing runs in a fresh
subprocess; the variants alternate, so drift of a shared host hits all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(threads: int, channels_last: bool, steps: int) -> dict:
    """Images per second of ``steps`` training steps in this process (after 3 warm-up steps)."""
    from metantk_nas.threads import limit_threads

    limit_threads(threads)
    import time

    import torch
    import torch.nn.functional as F

    from metantk_nas import plan
    from metantk_nas.space.final import FinalNetwork
    from metantk_nas.space.zoo import load_genotype

    config = plan.load([], workflow_dir=REPO, workdir=REPO, require_data=False)
    entry = config["experiments"][0]
    train = plan.settings(config, "train", entry["dataset"], entry["cells"])
    size = config["datasets"][entry["dataset"]]["image_size"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = FinalNetwork(load_genotype(config["metanas_genotype"]), C=config["channels"], n_cells=entry["cells"],
                         num_classes=64, drop_path_prob=train["drop_path"]).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(train["batch_size"], 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 64, (train["batch_size"],))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return {"images_per_s": steps * len(y) / (time.perf_counter() - started)}


def run_workers(threads: int, channels_last: bool, steps: int, processes: int) -> float:
    """Aggregate images/s of ``processes`` concurrent workers."""
    cmd = [sys.executable, __file__, "--worker", f"--threads={threads}", f"--steps={steps}"]
    if channels_last:
        cmd.append("--channels-last")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(processes)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a worker failed")
    return sum(json.loads(out.strip().splitlines()[-1])["images_per_s"] for out in outs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores to compare (default: all)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.threads, args.channels_last, args.steps)))
        return

    variants = {  # name -> (threads per process, channels_last, processes)
        "NCHW, 1 thread": (1, False, 1),
        "channels_last, 1 thread": (1, True, 1),
        f"NCHW, {args.cores} threads": (args.cores, False, 1),
        f"channels_last, {args.cores} threads": (args.cores, True, 1),
        f"channels_last, {args.cores} × 1-thread processes": (1, True, args.cores),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (threads, channels_last, processes) in variants.items():
            results[name].append(run_workers(threads, channels_last, args.steps, processes))
    median = {name: statistics.median(values) for name, values in results.items()}
    for name, value in median.items():
        print(f"{name:45s} {value:7.1f} images/s")
    print(f"memory format, 1 thread: channels_last / NCHW = "
          f"{median['channels_last, 1 thread'] / median['NCHW, 1 thread']:.2f}x")
    print(f"memory format, {args.cores} threads: channels_last / NCHW = "
          f"{median[f'channels_last, {args.cores} threads'] / median[f'NCHW, {args.cores} threads']:.2f}x")
    parallel = median[f"channels_last, {args.cores} × 1-thread processes"]
    print(f"scheduling: {args.cores} one-thread jobs / one {args.cores}-thread job, channels_last = "
          f"{parallel / median[f'channels_last, {args.cores} threads']:.2f}x")
    print(f"both (profiles/cpu and channels_last vs the former CPU run, NCHW at {args.cores} threads) = "
          f"{parallel / median[f'NCHW, {args.cores} threads']:.2f}x")

if __name__ == "__main__":
    main()

"""Benchmark: seconds per search candidate while another process keeps every core busy.

    python benchmarks/threads.py                 # embedded-default search, 3 rounds, busy competitor
    python benchmarks/threads.py --no-busy       # the same on an otherwise quiet machine

"before" is a search process with the libraries' default thread pools (what every job ran with
before ``--threads`` existed: one thread per core); "after" pins them to the search rule's one
thread with ``metantk_nas.threads.limit_threads`` (what ``metantk-nas --threads 1`` does). Each
timing runs in a fresh subprocess; before and after alternate, so drift of a shared host hits both.
A candidate = the origin and the candidate network's MetaNTK condition numbers and linear-region
counts, at the embedded default's search settings (``config/config.yaml``, resolved by
``metantk_nas.plan``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def busy(seconds: float) -> None:
    """Another job: dense matmuls with torch's default pool (one thread per core) for ``seconds``."""
    import torch

    a = torch.randn(768, 768)
    end = time.time() + seconds
    while time.time() < end:
        a = torch.tanh(a @ a)


def worker(store: str, threads: int | None, candidates: int) -> dict:
    """Seconds per candidate in this process (``threads`` None: the libraries' defaults)."""
    if threads is not None:
        from metantk_nas.threads import limit_threads

        limit_threads(threads)
    import torch

    from metantk_nas import plan
    from metantk_nas.data.store import open_split
    from metantk_nas.search.config import SearchConfig
    from metantk_nas.search.measure import Measurer
    from metantk_nas.space import PRIMITIVES

    config = plan.load([], workflow_dir=REPO, workdir=REPO, require_data=False)
    entry = config["experiments"][0]
    options = plan.settings(config, "search", entry["dataset"], entry["cells"])
    cfg = SearchConfig.from_dict({**options, "cells": entry["cells"], "channels": config["channels"],
                                  "device": "cpu"})
    measurer = Measurer(cfg, "metantk", open_split(store, "train"), torch.device("cpu"))
    measurer.init_supernet(0)
    measurer.init_thin(0)
    masks = {cell: torch.ones(9, len(PRIMITIVES), dtype=torch.bool) for cell in ("normal", "reduce")}
    measurer.condition_number(masks, 0, 7)  # warm-up
    started = time.perf_counter()
    for key in range(1, candidates + 1):
        for _ in range(2):  # origin and candidate (official pairing)
            measurer.condition_number(masks, key, 7)
            measurer.regions(masks, measurer.region_inputs(key))
    seconds = (time.perf_counter() - started) / candidates
    return {"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "seconds_per_candidate": seconds}


def _run_worker(store: str, threads: int | None, candidates: int) -> dict:
    command = [sys.executable, __file__, "--worker", "--store", store, "--candidates", str(candidates)]
    if threads is not None:
        command += ["--threads", str(threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="before/after pairs")
    parser.add_argument("--candidates", type=int, default=3, help="timed candidates per process")
    parser.add_argument("--no-busy", action="store_true", help="no competing process")
    parser.add_argument("--out", default="benchmarks/out/threads.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.busy_seconds:
        busy(args.busy_seconds)
        return
    if args.worker:
        print(json.dumps(worker(args.store, args.threads, args.candidates)))
        return

    from metantk_nas import provenance
    from metantk_nas.data.glyphs import generate_glyphs
    from metantk_nas.io import write_json

    with tempfile.TemporaryDirectory() as tmp:
        store = str(generate_glyphs(Path(tmp) / "glyphs", image_size=32, images_per_class=20, seed=0))
        competitor = None
        if not args.no_busy:
            competitor = subprocess.Popen([sys.executable, __file__, "--busy-seconds", "36000"])
        try:
            rounds = []
            for index in range(args.rounds):
                before = _run_worker(store, None, args.candidates)
                after = _run_worker(store, 1, args.candidates)
                rounds.append({"before": before, "after": after,
                               "ratio": before["seconds_per_candidate"] / after["seconds_per_candidate"]})
                print(f"round {index + 1}: before ({before['threads']} threads) "
                      f"{before['seconds_per_candidate']:.2f} s/candidate, after (--threads 1) "
                      f"{after['seconds_per_candidate']:.2f} s/candidate: {rounds[-1]['ratio']:.1f}x", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
    median = {key: statistics.median(r[key]["seconds_per_candidate"] for r in rounds) for key in ("before", "after")}
    ratio = statistics.median(r["ratio"] for r in rounds)
    print(f"median: before {median['before']:.2f} s, after {median['after']:.2f} s per candidate; "
          f"after is {ratio:.1f}x faster ({'busy' if not args.no_busy else 'quiet'} machine)")
    write_json(args.out, {"benchmark": "threads", "busy_competitor": not args.no_busy, "rounds": rounds,
                          "median_seconds_per_candidate": median, "median_ratio": ratio,
                          "provenance": provenance.collect(vars(args), 0)})


if __name__ == "__main__":
    main()

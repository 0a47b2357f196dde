"""Benchmark: candidate batching, K candidates' kernels in one batched forward+backward vs one at a time.

    python benchmarks/candidate_batching.py --threads 1                       # CI miniature (5 cells)
    python benchmarks/candidate_batching.py --threads 1 --channels 8 --resolution 16 --ntk-images 10 \\
        --pairing paired                                                      # the embedded default's sizes

The candidates are those of a first pruning round (every op alive, one op of one edge removed) on the
embedded glyph store; each candidate's kernel evaluations are those of the search (official pairing: the
origin and the candidate on the candidate's own tasks and head; paired: the candidate only, against the
round's origin). Every setting scores the same evaluations with the same seeds (``batch_candidates`` 1,
then each ``--batch`` value, 0 = the automatic K), after one untimed warm-up pass; it prints seconds per
candidate, the ratio to one at a time and the largest relative difference of a condition number.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from metantk_nas.data.glyphs import generate_glyphs
from metantk_nas.data.store import open_split
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.measure import Measurer, Request
from metantk_nas.seeding import derive_seed
from metantk_nas.space.supernet import all_alive_mask


def requests(n: int, pairing: str) -> list[Request]:
    """The kernel evaluations of ``n`` first-round candidates (edge-major, one op removed each)."""
    origin = {"normal": all_alive_mask(), "reduce": all_alive_mask()}
    out: list[Request] = []
    for index in range(n):
        cell, rest = ("normal", "reduce")[index % 2], index // 2
        mask = all_alive_mask().clone()
        mask[rest // 7 % 9, rest % 7] = False
        candidate = {**origin, cell: mask}
        data = derive_seed(0, "data", index)
        if pairing == "official":
            out.append((origin, data, derive_seed(0, "head", index, "origin")))
        out.append((candidate, data, derive_seed(0, "head", index, "candidate")))
    return out


def timed(measurer: Measurer, wanted: list[Request]) -> tuple[float, list[float]]:
    measurer.condition_numbers(wanted[: max(measurer.batch_groups(), 1)])  # warm-up: allocator, kernels
    started = time.perf_counter()
    values = measurer.condition_numbers(wanted)
    return time.perf_counter() - started, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="metantk-nas", choices=["metantk-nas", "te-nas"])
    parser.add_argument("--kernel", default="maml")
    parser.add_argument("--pairing", default="official", choices=["official", "paired"])
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--ntk-images", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--batch", type=int, nargs="+", default=[0, 4, 8, 16, 32],
                        help="batch_candidates values to time against 1 (0 = automatic)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        store = generate_glyphs(Path(tmp) / "glyphs", image_size=32, images_per_class=4, seed=0)
        train = open_split(store, "train")
        wanted = requests(args.candidates, args.pairing)
        condition = "metantk" if args.method == "metantk-nas" else "ntk"
        base = dict(method=args.method, kernel=args.kernel, pairing=args.pairing, cells=args.cells,
                    channels=args.channels, resolution=args.resolution, ntk_images=args.ntk_images,
                    tasks=args.tasks, device=args.device)
        print(f"{args.method} ({args.kernel}), {args.pairing}: cells {args.cells}, channels {args.channels}, "
              f"resolution {args.resolution}, ntk_images {args.ntk_images}, tasks {args.tasks}; "
              f"{args.candidates} candidates ({len(wanted)} kernel evaluations), {args.threads} thread(s)")
        reference: list[float] = []
        one = 0.0
        for batch in [1, *args.batch]:
            measurer = Measurer(SearchConfig.from_dict({**base, "batch_candidates": batch}), condition, train,
                                torch.device(args.device))
            measurer.init_supernet(0)
            seconds, values = timed(measurer, wanted)
            if batch == 1:
                reference, one = values, seconds
            diff = max(abs(a - b) / abs(a) for a, b in zip(reference, values, strict=True))
            label = f"auto (K={measurer.batch_groups()})" if batch == 0 else f"K={batch}"
            print(f"  {label:>12}: {seconds / args.candidates:.4f} s per candidate, {one / seconds:5.2f}x "
                  f"vs one at a time, max relative difference {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()

"""Benchmark: what verifying a store on open costs, against reading its images once.

    python benchmarks/store_verify.py --images 50000 --size 84 [--dir /tmp] [--repeats 5] [--keep]

Writes a synthetic store (train: ``--images`` random 84×84 images, > 1 GB by default; val/test
tiny) with ``write_store``, then times ``open_split(store, "train")``:

* ``cached``: the default open when the full sha256 is remembered (``.verified.json``; written by
  ``write_store`` itself from the hashes it computes for the manifest): a ``stat`` per file;
* ``first``: the default open with no cache entry (a copied store, or a changed file): the full
  sha256, once, after which opens are ``cached`` again;
* ``full`` (hash every open) and ``sampled`` (32 MiB sample, blind to a byte between samples);

against the reference job ``read``: reading every train image once (the I/O of one data epoch, a
lower bound of any job that uses the split; one epoch of the default training at 84×84 takes
minutes on top). "cold" runs evict the file from the page cache first (``posix_fadvise``), as after
a reboot; "warm" runs read it from memory. Ratios are over the reference of the same temperature.
Prints a table and writes ``benchmarks/out/store_verify.json``; the store is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from metantk_nas import provenance
from metantk_nas.data import store
from metantk_nas.data.store import VERIFY_CACHE, open_split, write_store
from metantk_nas.io import write_json


def _evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (works without privileges for clean pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _timed(function, repeats: int, before=None) -> list[float]:
    times = []
    for _ in range(repeats):
        if before:
            before()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def _read_all(store_dir: Path, rows: int = 1024) -> None:
    """The reference job: every train image read once, in batches, as a data epoch does."""
    images = open_split(store_dir, "train", verify=False).images
    batch = np.empty((rows, *images.shape[1:]), dtype=np.uint8)
    for start in range(0, images.shape[0], rows):
        chunk = images[start:start + rows]
        np.copyto(batch[:len(chunk)], chunk)  # every byte read from the memory map, as a data loader does


def _synthetic(n: int, size: int, classes: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, 4096):  # in blocks: bounded temporary memory
        images[start:start + 4096] = rng.integers(0, 256, size=images[start:start + 4096].shape, dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % classes
    small = rng.integers(0, 256, size=(2 * 5, size, size, 3), dtype=np.uint8), np.repeat(np.arange(5), 2)
    splits = {"train": (images, labels, [f"c{c}" for c in range(classes)])}
    for split in ("val", "test"):
        splits[split] = (small[0], small[1].astype(np.int64), [f"{split}{c}" for c in range(5)])
    return splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="train images (default: 50000, 1.06 GB at 84×84)")
    parser.add_argument("--size", type=int, default=84)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the store is written")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the cheap measurements")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic store")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "store_verify.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="store-verify-", dir=args.dir))
    path = work / "store"
    try:
        splits = _synthetic(args.images, args.size)
        start = time.perf_counter()
        write_store(path, "synthetic", "synthetic", splits, {})
        write_s = time.perf_counter() - start
        del splits
        folder = path / "train"
        images = folder / "images.npy"
        cache = folder / VERIFY_CACHE
        seeded = "images.npy" in json.loads(cache.read_text())["files"] if cache.exists() else False
        if not seeded:  # a store younger than RACY_SECONDS: let it age so the cache can be written
            time.sleep(store.RACY_SECONDS)
        size = images.stat().st_size

        def evict():
            _evict(images)

        def drop_cache():
            cache.unlink(missing_ok=True)

        def drop_cache_and_evict():
            drop_cache()
            evict()

        def open_default():
            open_split(path, "train")

        results: dict[str, list[float]] = {}
        open_default()  # make sure the cache holds every file
        results["cached warm"] = _timed(open_default, args.repeats)
        results["read warm"] = _timed(lambda: _read_all(path), args.repeats)
        results["first warm"] = _timed(open_default, min(args.repeats, 3), before=drop_cache)
        results["full warm"] = _timed(lambda: open_split(path, "train", verify="full"), min(args.repeats, 3))
        results["sampled warm"] = _timed(lambda: open_split(path, "train", verify="sampled"), args.repeats)
        results["read cold"] = _timed(lambda: _read_all(path), min(args.repeats, 3), before=evict)
        results["first cold"] = _timed(open_default, min(args.repeats, 3), before=drop_cache_and_evict)
        results["cached cold"] = _timed(open_default, args.repeats, before=evict)
        median = {name: statistics.median(times) for name, times in results.items()}

        print(f"store: {args.images} train images of {args.size}×{args.size}, images.npy {size / 1e9:.2f} GB "
              f"(write_store {write_s:.1f} s; verification cache written by write_store: {seeded})")
        print(f"{'measurement':<14}{'median s':>10}{'vs read':>12}   all runs")
        for name, value in median.items():
            reference = median["read cold" if name.endswith("cold") else "read warm"]
            runs = " ".join(f"{t:.4f}" for t in results[name])
            print(f"{name:<14}{value:>10.4f}{100 * value / reference:>11.2f}%   {runs}")
        write_json(args.out, {
            "images": args.images, "size": args.size, "bytes": size, "write_s": write_s,
            "cache_seeded_by_write_store": seeded, "median_s": median, "runs_s": results,
            "ratio_to_read": {name: value / median["read cold" if name.endswith("cold") else "read warm"]
                              for name, value in median.items()},
            "provenance": provenance.collect({"images": args.images, "size": args.size}),
        })
        print(f"wrote {args.out}")
    finally:
        if args.keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()

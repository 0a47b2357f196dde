"""CLI of metantk_nas.data: ``prepare`` (convert a dataset into a store) and ``inspect`` (show one)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

FORMATS = ("rfs-mini", "rfs-tiered", "ravi-csv", "ren-tiered", "rfs-cifarfs", "rfs-fc100", "glyphs")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``prepare`` and ``inspect``."""
    prepare = subparsers.add_parser("prepare", help="convert a few-shot dataset (or generate glyphs) into a store")
    prepare.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    prepare.add_argument("--root", type=Path, help="folder holding the dataset files (not used by glyphs)")
    prepare.add_argument("--out", type=Path, required=True,
                         help="store folder to create: new, empty, or (with --force) a store written before; "
                              "never --root or a folder inside or around it")
    prepare.add_argument("--force", action="store_true",
                         help="replace a store written before by prepare (a folder holding anything else is "
                              "still refused)")
    prepare.add_argument("--wait", action="store_true",
                         help="if another process is writing the same --out, wait for it instead of refusing")
    prepare.add_argument("--image-size", type=int, default=84, help="glyphs only: image side in pixels (8..512)")
    prepare.add_argument("--images-per-class", type=int, default=60, help="glyphs only (1..10000)")
    prepare.add_argument("--seed", type=int, default=0, help="glyphs only: seed of the split and rendering")
    prepare.set_defaults(func=_prepare)

    inspect = subparsers.add_parser("inspect", help="print a store's manifests and draw a grid of samples")
    inspect.add_argument("store", type=Path)
    inspect.add_argument("--grid", type=Path, help="PNG file (new) for a grid of random samples per class")
    inspect.add_argument("--force", action="store_true", help="replace an existing --grid file")
    inspect.add_argument("--split", default="test", help="split drawn in the grid")
    inspect.add_argument("--classes", type=int, default=10, help="classes (rows) in the grid")
    inspect.add_argument("--per-class", type=int, default=8, help="samples (columns) per class in the grid")
    inspect.add_argument("--seed", type=int, default=0, help="seed of the random choice of classes and samples")
    inspect.set_defaults(func=_inspect)


def _prepare(args: argparse.Namespace) -> int:
    """Validate everything cheap first, then hold the output lock while checking and writing ``--out``."""
    from metantk_nas.data.store import check_out_vs_root, check_store_target
    from metantk_nas.io import output_lock, remove_leftovers

    out = Path(os.path.abspath(args.out))
    if out == out.parent:
        raise ValueError(f"--out {args.out}: a store cannot replace the file-system root")
    if args.fmt == "glyphs":
        from metantk_nas.data.glyphs import check_glyph_arguments

        check_glyph_arguments(args.image_size, args.images_per_class, args.seed)
    elif args.root is None:
        raise ValueError(f"--root is required for --format {args.fmt}")
    elif not args.root.is_dir():
        raise FileNotFoundError(f"{args.root}: dataset folder not found")
    if args.root is not None:
        check_out_vs_root(out, args.root)
    check_store_target(out, args.force)  # refuse before waiting for the lock
    with output_lock(out, wait=args.wait, hint=" (pass --wait to wait for it)"):
        for leftover in remove_leftovers(out):
            print(f"removed {leftover} (left by a killed run)", file=sys.stderr)
        check_store_target(out, args.force)
        path = _write(args, out)
    print(f"wrote {path}")
    return 0


def _write(args: argparse.Namespace, out: Path) -> Path:
    from tqdm import tqdm

    if args.fmt == "glyphs":
        from metantk_nas.data.glyphs import generate_glyphs, glyph_classes

        with tqdm(total=len(glyph_classes()[0]), unit="class", desc="glyphs") as bar:
            return generate_glyphs(out, image_size=args.image_size, images_per_class=args.images_per_class,
                                   seed=args.seed, progress=bar.update, overwrite=args.force)
    from metantk_nas.data.readers import convert

    with tqdm(unit="img", desc=args.fmt) as bar:
        return convert(args.fmt, args.root, out, progress=bar.update, overwrite=args.force)


def _inspect(args: argparse.Namespace) -> int:
    from metantk_nas.data.store import open_split, read_dataset_info

    info = read_dataset_info(args.store)
    print(json.dumps({key: value for key, value in info.items() if key != "provenance"}, indent=2, allow_nan=False))
    for split in info["splits"]:
        manifest = open_split(args.store, split).manifest
        summary = {key: manifest[key] for key in ("counts", "shape", "images_per_class", "mean", "std")}
        print(f"{split}: {json.dumps(summary, allow_nan=False)}")
    if args.grid:
        if os.path.lexists(args.grid) and not (args.force and args.grid.is_file() and not args.grid.is_symlink()):
            from metantk_nas.io import OutputExists

            what = "exists" if args.grid.is_file() and not args.grid.is_symlink() else "exists and is not a file"
            raise OutputExists(f"{args.grid}: {what}; refusing to replace it"
                               + (" (pass --force to replace a file)" if what == "exists" else ""))
        write_grid(args.store, args.split, args.grid, args.classes, args.per_class, args.seed)
        print(f"wrote {args.grid}")
    return 0


def write_grid(store: Path, split: str, out: Path, n_classes: int, per_class: int, seed: int) -> None:
    """A PNG with one row per randomly chosen class and ``per_class`` random samples of it."""
    import numpy as np
    from PIL import Image

    from metantk_nas.data.store import open_split
    from metantk_nas.io import atomic_path

    data = open_split(store, split)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(data.num_classes, size=min(n_classes, data.num_classes), replace=False))
    size = data.image_size
    grid = np.full((len(chosen) * size, per_class * size, 3), 255, dtype=np.uint8)
    for row, cls in enumerate(chosen):
        members = np.flatnonzero(data.labels == cls)
        picks = np.sort(rng.choice(members, size=min(per_class, members.size), replace=False))
        for col, index in enumerate(picks):
            grid[row * size:(row + 1) * size, col * size:(col + 1) * size] = data.images[index]
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")

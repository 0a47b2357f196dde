"""``metantk-nas search``: run one search method and write genotype.json, trace.csv and search.json.

Option precedence: SearchConfig defaults < ``--config FILE.yaml`` < ``--preset`` (Appendix E) <
explicit flags. The YAML file holds SearchConfig keys, at top level or under a ``search:`` section.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metantk_nas.search.config import CHOICES, METHODS

#: flag → SearchConfig key for every option flag (all default to None = "not given").
_FLAGS: dict[str, str] = {
    "method": "method", "kernel": "kernel", "lam_tau": "lam_tau", "reg": "reg", "cells": "cells",
    "channels": "channels", "seed": "seed", "ops": "ops", "genotype": "genotype", "repeats": "repeats", "tasks": "tasks",
    "ways": "ways", "shots": "shots", "queries": "queries", "ntk_images": "ntk_images",
    "resolution": "resolution", "delta": "delta", "precision": "precision", "init": "init", "output": "output",
    "pairing": "pairing", "edge_origin": "edge_origin", "region_batches": "region_batches",
    "region_batch_size": "region_batch_size", "backend": "backend", "device": "device",
}


def build_config(args: argparse.Namespace):
    """The resolved :class:`SearchConfig` of parsed arguments."""
    from metantk_nas.io import read_yaml_section
    from metantk_nas.search.config import SearchConfig
    from metantk_nas.search.methods import paper_settings

    values: dict[str, Any] = {}
    source = "command line"
    if args.config is not None:
        values.update(read_yaml_section(args.config, "search"))
        source = f"{args.config} + command line"
    given = {key: getattr(args, flag) for flag, key in _FLAGS.items() if getattr(args, flag) is not None}
    if args.preset is not None:
        cells = given.get("cells", values.get("cells", SearchConfig.cells))
        values.update(paper_settings(args.preset, cells))
    values.update(given)
    return SearchConfig.from_dict(values, source=source)


def _handle(args: argparse.Namespace) -> int:
    from metantk_nas.io import output_folder
    from metantk_nas.search.engine import run_search

    cfg = build_config(args)
    with output_folder(args.out, wait=args.wait):
        genotype = run_search(cfg, args.dataset, args.out, args.work, progress=not args.no_progress)
    print(f"{cfg.method}: {genotype}")
    print(f"wrote {Path(args.out) / 'genotype.json'}, trace.csv, search.json")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``search``."""
    p = subparsers.add_parser("search", help="training-free architecture search (MetaNTK-NAS and baselines)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="prepared dataset store (its train split is searched on)")
    p.add_argument("--out", required=True, help="output folder for genotype.json, trace.csv, search.json")
    p.add_argument("--work", help="folder for the resumable round state (default OUT/../.work/OUT_NAME)")
    p.add_argument("--config", help="YAML file with search options")
    p.add_argument("--preset", choices=("mini", "tiered"), help="Appendix E kernel/λτ/ρ for the dataset and --cells")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--kernel", choices=CHOICES["kernel"], help="MetaNTK kernel (default maml)")
    p.add_argument("--lam-tau", dest="lam_tau", type=float, help="λτ (default inf)")
    p.add_argument("--reg", type=float, help="kernel regulariser ρ (default 1e-3)")
    p.add_argument("--cells", type=int, help="cells of the supernet (default 5)")
    p.add_argument("--channels", type=int, help="initial channels C (default 48)")
    p.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    p.add_argument("--genotype", help="zoo name or JSON file (method fixed)")
    p.add_argument("--ops", type=lambda text: [op.strip() for op in text.split(",") if op.strip()],
                   help="comma-separated ops alive at the start (default: all 7)")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    p.add_argument("--tasks", type=int, help="tasks per MetaNTK batch (default 3)")
    p.add_argument("--ways", type=int, help="classes per task (default 5)")
    p.add_argument("--shots", type=int, help="support images per class (default 1)")
    p.add_argument("--queries", type=int, help="query images per class (default 1)")
    p.add_argument("--ntk-images", dest="ntk_images", type=int, help="TE-NAS NTK batch (default 30)")
    p.add_argument("--resolution", type=int, help="search image size (default 32)")
    p.add_argument("--delta", choices=CHOICES["delta"], help="default relative (official)")
    p.add_argument("--precision", type=int, help="decimals of relative deltas (default 3)")
    p.add_argument("--init", choices=CHOICES["init"], help="default = PyTorch init (official)")
    p.add_argument("--output", choices=CHOICES["output"], help="kernel output, default sum (official)")
    p.add_argument("--pairing", choices=CHOICES["pairing"], help="default official")
    p.add_argument("--edge-origin", dest="edge_origin", choices=CHOICES["edge_origin"], help="default stale (official)")
    p.add_argument("--region-batches", dest="region_batches", type=int, help="default 3")
    p.add_argument("--region-batch-size", dest="region_batch_size", type=int, help="default 1000")
    p.add_argument("--backend", choices=CHOICES["backend"], help="per-sample-gradient backend (default auto)")
    p.add_argument("--device", help="auto | cpu | cuda[:N] (default auto)")
    p.set_defaults(func=_handle)

"""``metantk-nas search``: run one search method and write genotype.json, trace.csv and search.json.

Option precedence: SearchConfig defaults < ``--config FILE`` (YAML or JSON: SearchConfig keys at top
level or under ``search:``; the workflow hands each job its resolved settings this way) <
``--preset`` (Appendix E) < explicit flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from metantk_nas.search.config import SearchConfig


def build_config(args: argparse.Namespace) -> SearchConfig:
    """The resolved :class:`SearchConfig` of parsed arguments (settings file < preset < flags)."""
    from metantk_nas.io import read_settings_section
    from metantk_nas.search.methods import paper_settings

    if args.preset is None:
        return SearchConfig.from_args(args)
    cells = args.cells or (read_settings_section(args.config, "search") if args.config else {}).get(
        "cells", SearchConfig.cells)
    return SearchConfig.from_args(args, preset=paper_settings(args.preset, cells))


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
    p.add_argument("--config", help="settings file (YAML or JSON) with SearchConfig keys")
    p.add_argument("--preset", choices=("mini", "tiered"), help="Appendix E kernel/λτ/ρ for the dataset and --cells")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    SearchConfig.add_arguments(p)
    p.set_defaults(func=_handle)

"""CLI of metantk_nas.theory: ``theory`` measures Theorems 1 and 2 over a range of widths."""

from __future__ import annotations

import argparse
from pathlib import Path

from metantk_nas.theory.config import TheoryConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``theory``. Every setting flag defaults to "not given": the settings file, then the defaults apply."""
    parser = subparsers.add_parser(
        "theory", help="measure MAML's linear convergence (Theorem 1) and its MetaNTK kernel regression (Theorem 2)")
    parser.add_argument("--dataset", type=Path, required=True, help="prepared store (train and test splits are used)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (CSV, figures, summary.md, theory.json)")
    parser.add_argument("--config", type=Path, help="settings file (YAML or JSON) with TheoryConfig keys")
    TheoryConfig.add_arguments(parser)
    parser.set_defaults(func=_theory)


def build_config(args: argparse.Namespace) -> TheoryConfig:
    """The :class:`TheoryConfig` a ``theory`` command line resolves to (settings file, then flags)."""
    return TheoryConfig.from_args(args)


def _theory(args: argparse.Namespace) -> int:
    from metantk_nas.device import select_device
    from metantk_nas.theory.outputs import run_and_write

    config = build_config(args)
    run_and_write(config, args.dataset, args.out, select_device(config.device))
    print(f"wrote {args.out}")
    return 0

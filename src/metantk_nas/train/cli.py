"""``metantk-nas train``: RFS training of a final network (see ``metantk_nas.train.loop``)."""

from __future__ import annotations

import argparse

from metantk_nas.train.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``train``."""
    parser = subparsers.add_parser("train", help="train a final network with the RFS recipe (Paper §6.1)",
                                   description="Train a final network; writes OUT/model.pt, metrics.csv, train.json.")
    parser.add_argument("--genotype", required=True, help="zoo name (e.g. metantk-nas/mini-5cell-1) or genotype file")
    parser.add_argument("--dataset", required=True, help="prepared store directory")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--work", default=None, help="checkpoint directory (default OUT/work); resumed if present")
    parser.add_argument("--config", default=None,
                        help="settings file (YAML or JSON) with TrainConfig keys (a 'train' section or flat)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    TrainConfig.add_arguments(parser)
    parser.set_defaults(func=_run)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` a ``train`` command line resolves to (settings file, then flags)."""
    return TrainConfig.from_args(args)


def _run(args: argparse.Namespace) -> int:
    from metantk_nas.io import output_folder
    from metantk_nas.space import load_genotype
    from metantk_nas.train.loop import train

    cfg = build_config(args)
    with output_folder(args.out, wait=args.wait):
        model_path = train(cfg, load_genotype(args.genotype), args.dataset, args.out, args.work,
                           progress=not args.no_progress)
    print(model_path)
    return 0

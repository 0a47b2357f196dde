"""``metantk-nas train``: RFS training of a final network (see ``metantk_nas.train.loop``)."""

from __future__ import annotations

import argparse

#: CLI flag → TrainConfig key, for the flags that override the config file.
_OVERRIDES = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "decay_epochs": "decay_epochs",
              "drop_path": "drop_path", "crop_padding": "crop_padding", "channels": "channels", "cells": "cells", "seed": "seed", "device": "device"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``train``."""
    parser = subparsers.add_parser("train", help="train a final network with the RFS recipe (Paper §6.1)",
                                   description="Train a final network; writes OUT/model.pt, metrics.csv, train.json.")
    parser.add_argument("--genotype", required=True, help="zoo name (e.g. metantk-nas/mini-5cell-1) or genotype file")
    parser.add_argument("--dataset", required=True, help="prepared store directory")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--work", default=None, help="checkpoint directory (default OUT/work); resumed if present")
    parser.add_argument("--config", default=None, help="YAML file with TrainConfig keys (a 'train' section or flat)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--decay-epochs", type=int, nargs="*")
    parser.add_argument("--drop-path", type=float)
    parser.add_argument("--crop-padding", type=int, help="random-crop zero padding (8 at 84×84)")
    parser.add_argument("--channels", type=int)
    parser.add_argument("--cells", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    parser.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    parser.set_defaults(func=_run)


def build_config(args: argparse.Namespace):
    """The :class:`TrainConfig` a ``train`` command line resolves to (config file, then flags)."""
    from metantk_nas.io import read_yaml_section
    from metantk_nas.train.config import TrainConfig

    values = read_yaml_section(args.config, "train") if args.config else {}
    for flag, key in _OVERRIDES.items():
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.no_amp:
        values["amp"] = False
    if args.no_channels_last:
        values["channels_last"] = False
    if args.compile:
        values["compile"] = True
    return TrainConfig.from_dict(values, source=args.config or "train options")


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

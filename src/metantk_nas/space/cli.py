"""``metantk-nas arch``: inspect, count and draw architectures (zoo names or genotype files)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _stem(name: str) -> str:
    path = Path(name)
    return path.stem if path.suffix else name.replace("/", "_")


def _list(args: argparse.Namespace) -> int:
    from metantk_nas.space.zoo import list_zoo, zoo_entry

    for name in list_zoo():
        print(f"{name}\t{zoo_entry(name)['source']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from metantk_nas.space.zoo import list_zoo, load_genotype, zoo_entry

    genotype = load_genotype(args.arch)
    if args.json:
        print(json.dumps(genotype.to_dict(), indent=2))
        return 0
    print(genotype)
    if args.arch in list_zoo():
        entry = zoo_entry(args.arch)
        print(f"source: {entry['source']}")
        print(f"setting: {json.dumps(entry['setting'], ensure_ascii=False)}")
    for kind in ("normal", "reduce"):
        print(f"{kind} cell:")
        for offset, node in enumerate(genotype.cell(kind == "reduce")):
            inputs = ", ".join(f"{op}({source})" for op, source in node)
            print(f"  node {offset + 2} = {inputs}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from metantk_nas.space.final import FinalNetwork, count_parameters
    from metantk_nas.space.zoo import load_genotype

    genotype = load_genotype(args.arch)
    model = FinalNetwork(genotype, C=args.channels, n_cells=args.cells, num_classes=args.classes)
    params = count_parameters(model)
    if args.json:
        print(json.dumps({"params": params, "genotype": str(genotype), "arch": args.arch, "cells": args.cells,
                          "classes": args.classes, "channels": args.channels}))
    else:
        print(f"{params} parameters ({params / 1e6:.2f} M): {args.arch}, {args.cells} cells, "
              f"C={args.channels}, {args.classes} classes")
    return 0


def _draw(args: argparse.Namespace) -> int:
    from metantk_nas.space.draw import draw_genotype
    from metantk_nas.space.zoo import load_genotype

    for path in draw_genotype(load_genotype(args.arch), args.out, args.stem or _stem(args.arch)):
        print(path)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``arch list|show|params|draw``."""
    arch = subparsers.add_parser("arch", help="inspect, count and draw architectures")
    commands = arch.add_subparsers(dest="arch_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list the architecture zoo")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="print a genotype")
    show.add_argument("arch", metavar="NAME|FILE", help="zoo name (see 'arch list') or genotype file")
    show.add_argument("--json", action="store_true", help="print the JSON form")
    show.set_defaults(func=_show)

    params = commands.add_parser("params", help="count the parameters of the final network")
    params.add_argument("arch", metavar="NAME|FILE")
    params.add_argument("--cells", type=_positive, default=5, help="number of cells (default 5)")
    params.add_argument("--classes", type=_positive, default=64, help="classifier width (default 64)")
    params.add_argument("--channels", type=_positive, default=48, help="initial channels C (default 48)")
    params.add_argument("--json", action="store_true", help='print {"params": N, ...}')
    params.set_defaults(func=_params)

    draw = commands.add_parser("draw", help="draw the normal and reduction cell (SVG + PNG)")
    draw.add_argument("arch", metavar="NAME|FILE")
    draw.add_argument("--out", required=True, type=Path, help="output folder")
    draw.add_argument("--stem", help="file name stem (default: derived from NAME|FILE)")
    draw.set_defaults(func=_draw)

"""``metantk-nas kernel``: one MetaNTK / NTK condition number of a supernet or genotype, as JSON.

It measures exactly as the search does (``metantk_nas.search.measure.Measurer``, the search's settings:
ways, shots, queries, tasks, resolution, λτ, ρ, ...), with the keys of the search's first round: the
weights of round 0 and the tasks and head of its first repeat. So ``--supernet`` with a search's
settings gives the condition number that search (``pairing: paired``) records as ``cond_origin`` of
round 0, repeat 0.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from metantk_nas.proxies.registry import PROXIES, kernel_condition
from metantk_nas.search.config import SearchConfig

#: ``--kernel`` → (what the condition number is of, SearchConfig ``kernel``): the registry's condition-number proxies.
KERNELS: dict[str, tuple[str, str | None]] = {name: kernel_condition(name) for name, proxy in PROXIES.items()
                                              if proxy.network == "supernet"}
#: SearchConfig keys that are not about one measurement (no flag here; a --config file may still hold them).
_SEARCH_ONLY = ("method", "kernel", "genotype", "repeats", "delta", "precision", "pairing", "edge_origin",
                "region_batches", "region_batch_size", "batch_candidates")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``kernel``."""
    parser = subparsers.add_parser(
        "kernel",
        help="condition number of the MetaNTK/NTK of a network on one batch of tasks, measured as the search does",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--genotype", help="zoo name or JSON file: keep only this genotype's ops/edges in the supernet")
    which.add_argument("--supernet", action="store_true",
                       help="the search's starting supernet: every op of --ops alive on every edge")
    parser.add_argument("--dataset", required=True, help="prepared store folder (metantk-nas prepare)")
    parser.add_argument("--kernel", required=True, choices=KERNELS)
    parser.add_argument("--config", help="settings file (YAML or JSON) with SearchConfig keys, e.g. a search job's")
    parser.add_argument("--split", default="train", help="split the tasks/images come from (the search's: train)")
    SearchConfig.add_arguments(parser, skip=_SEARCH_ONLY)
    parser.set_defaults(func=_run)


def build_config(args: argparse.Namespace) -> SearchConfig:
    """The search settings of a ``kernel`` command line (settings file, then flags, then ``--kernel``)."""
    from metantk_nas.io import read_settings_section

    values: dict[str, Any] = read_settings_section(args.config, "search") if args.config else {}
    values.update({k: v for k, v in SearchConfig.values_from_args(args).items() if k not in _SEARCH_ONLY})
    kernel = KERNELS[args.kernel][1]
    if kernel is not None:
        values["kernel"] = kernel
    return SearchConfig.from_dict(values, source=args.config or "kernel options")


def _run(args: argparse.Namespace) -> int:
    import time

    from metantk_nas.data.store import open_split
    from metantk_nas.device import select_device
    from metantk_nas.io import to_jsonable
    from metantk_nas.provenance import collect
    from metantk_nas.search.engine import initial_masks
    from metantk_nas.search.measure import Measurer
    from metantk_nas.seeding import derive_seed, seed_everything
    from metantk_nas.space import load_genotype, masks_from_genotype

    cfg = build_config(args)
    device = select_device(cfg.device)  # claims a GPU: before anything touches CUDA
    seed_everything(cfg.seed)
    split = open_split(args.dataset, args.split)
    measurer = Measurer(cfg, KERNELS[args.kernel][0], split, device)
    if args.genotype:
        masks = dict(zip(("normal", "reduce"), masks_from_genotype(load_genotype(args.genotype)), strict=True))
    else:
        masks = initial_masks(cfg.ops)
    # the search's first round: its weights, and the tasks/head of repeat 0 (pairing: paired)
    measurer.init_supernet(derive_seed(cfg.seed, "weights", "ops", 0))
    keys = {"data": derive_seed(cfg.seed, "ops", 0, "data", 0), "head": derive_seed(cfg.seed, "ops", 0, "head", 0)}
    start = time.perf_counter()
    cond = measurer.kernel_condition(masks, keys["data"], keys["head"])
    seconds = time.perf_counter() - start
    config = {**cfg.to_dict(), "kernel": args.kernel, "architecture": args.genotype or "supernet",
              "dataset": args.dataset, "split": args.split}
    payload = {**cond.summary(), "eigenvalues": cond.eigenvalues, "seconds": seconds, "keys": keys,
               "config": config, "provenance": collect(config, cfg.seed)}
    print(json.dumps(to_jsonable(payload), indent=2))
    return 0

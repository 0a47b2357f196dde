"""``metantk-nas study``: the proxy validity study's two steps.

``study score`` measures every proxy of one architecture as the search sees it (``study.scores``) and writes
one CSV row per proxy and seed; ``study summarise`` joins the scores of many architectures with their
evaluated accuracy and writes, per proxy — and per search method that ranks by several proxies, its rank
sum across the architectures (MetaNTK-NAS, TE-NAS) — Kendall τ and Spearman ρ with bootstrap intervals, the
top-1 architecture, the spread over seeds and the cost (``study.summary``), and the scatter and τ figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metantk_nas.search.config import SearchConfig

#: SearchConfig keys about a whole search, not about one measurement (no flag here; a --config file may hold them).
_SEARCH_ONLY = ("method", "kernel", "genotype", "proxies", "repeats", "delta", "precision", "pairing", "edge_origin",
                "batch_candidates")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``study score`` and ``study summarise``."""
    from metantk_nas.proxies.registry import PROXIES

    study = subparsers.add_parser("study", help="does a training-free proxy predict few-shot accuracy? "
                                  "(score architectures, summarise against their accuracy)", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = study.add_subparsers(dest="study_command", metavar="STEP", required=True)
    score = commands.add_parser("score", help="every proxy of one architecture, as the search measures it")
    score.add_argument("--dataset", required=True, help="prepared store (its train split, as the search)")
    score.add_argument("--genotype", required=True, help="zoo name or genotype file")
    score.add_argument("--name", help="architecture name in the rows (default: --genotype)")
    score.add_argument("--out", required=True, type=Path, help="scores CSV to write")
    score.add_argument("--config", help="settings file (YAML or JSON) with SearchConfig keys, e.g. a search job's")
    score.add_argument("--proxies", nargs="+", choices=PROXIES, default=list(PROXIES), metavar="PROXY",
                       help=f"registry proxies to measure (default: all: {', '.join(PROXIES)})")
    score.add_argument("--seeds", type=int, default=3, help="proxy seeds (fresh weights and inputs) per architecture")
    SearchConfig.add_arguments(score, skip=_SEARCH_ONLY)
    score.set_defaults(func=_score)
    summarise = commands.add_parser("summarise", help="rank correlation of every proxy with the trained accuracy")
    summarise.add_argument("--scores", nargs="+", required=True, type=Path, help="scores CSVs of study score")
    summarise.add_argument("--evaluated", nargs="+", required=True, metavar="NAME=DIR",
                           help="an architecture's evaluation folder (1shot.json, 5shot.json of metantk-nas evaluate)")
    summarise.add_argument("--out", required=True, type=Path, help="the summary CSV (e.g. results/proxies.csv)")
    summarise.add_argument("--figures", required=True, type=Path, help="folder of proxies_scatter and proxies_tau")
    summarise.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of each interval")
    summarise.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    summarise.set_defaults(func=_summarise)


def search_scores() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The combined score of every search method that ranks by several proxies (MetaNTK-NAS with either kernel,
    TE-NAS): name → (label, proxies), compared with accuracy beside the single proxies."""
    from metantk_nas.search.methods import METANTK, METHODS

    out = {}
    for name, method in METHODS.items():
        if len(method.proxies) < 2:
            continue
        kernels = ("maml", "anil") if METANTK in method.proxies else ("",)
        for kernel in kernels:
            proxies = tuple(f"{METANTK}-{kernel}" if p == METANTK else p for p in method.proxies)
            key = f"{name}-{kernel}" if kernel else name
            out[key] = (f"{method.label}{f' ({kernel.upper()})' if kernel else ''}: rank sum", proxies)
    return out


def build_config(args: argparse.Namespace) -> SearchConfig:
    """The search settings of a ``study score`` command line (settings file, then flags)."""
    from metantk_nas.io import read_settings_section

    values: dict[str, Any] = read_settings_section(args.config, "search") if args.config else {}
    values.update(SearchConfig.values_from_args(args))
    values.update({"method": "metantk-nas", "genotype": None, "proxies": None})  # one measurement, not a search
    return SearchConfig.from_dict(values, source=args.config or "study options")


def _score(args: argparse.Namespace) -> int:
    from metantk_nas.data.store import open_split
    from metantk_nas.device import select_device
    from metantk_nas.io import write_csv
    from metantk_nas.seeding import seed_everything
    from metantk_nas.space import load_genotype
    from metantk_nas.study.scores import SCORE_COLUMNS, score_architecture

    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
    cfg = build_config(args)
    genotype = load_genotype(args.genotype)
    device = select_device(cfg.device)  # claims a GPU: before anything touches CUDA
    seed_everything(cfg.seed)
    rows = score_architecture(args.name or args.genotype, genotype, cfg, open_split(args.dataset, "train"),
                              args.proxies, args.seeds, device)
    write_csv(args.out, SCORE_COLUMNS, rows)
    print(f"wrote {args.out} ({len(rows)} scores)")
    return 0


def _summarise(args: argparse.Namespace) -> int:
    import csv

    from metantk_nas.io import read_json, write_csv
    from metantk_nas.proxies.registry import PROXIES
    from metantk_nas.study.figures import scatter_figure, tau_figure
    from metantk_nas.study.summary import (
        PER_ARCHITECTURE_COLUMNS,
        SHOTS,
        SUMMARY_COLUMNS,
        per_architecture,
        rank_sum_scores,
        summarise,
    )

    scores = []
    for path in args.scores:
        with open(path, newline="", encoding="utf-8") as handle:
            scores += list(csv.DictReader(handle))
    accuracy = []
    for item in args.evaluated:
        name, _, folder = item.partition("=")
        if not name or not folder:
            raise ValueError(f"--evaluated {item!r}: expected NAME=DIR")
        for shot in SHOTS:
            result = read_json(Path(folder) / f"{shot}shot.json")
            accuracy.append({"architecture": name, "shots": shot, "accuracy": 100.0 * float(result["mean"])})
    directions = {name: p.higher_is_better for name, p in PROXIES.items()}
    labels = {name: p.label for name, p in PROXIES.items()}
    for name, (label, proxies) in search_scores().items():  # the searches' rank sums, as pseudo-proxies
        scores += rank_sum_scores(scores, name, proxies, directions)
        directions[name], labels[name] = True, label
    summary = summarise(scores, accuracy, directions, labels, resamples=args.resamples, seed=args.seed)
    points = per_architecture(scores, accuracy)
    write_csv(args.out, SUMMARY_COLUMNS, summary)
    write_csv(args.out.with_name(f"{args.out.stem}_architectures.csv"), PER_ARCHITECTURE_COLUMNS, points)
    paths = scatter_figure(points, summary, args.figures) + tau_figure(summary, args.figures)
    print(f"wrote {args.out}, {args.out.stem}_architectures.csv and {', '.join(str(p) for p in paths)}")
    return 0

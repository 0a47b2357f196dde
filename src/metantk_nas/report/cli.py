"""``metantk-nas report table1|table2|figures``: the paper's tables and the figures from run folders.

Run folders are ``results/{dataset}/{cells}cell/{method}/seed{seed}`` (the workflow's layout).
``--paper-dataset NAME=COLUMN`` maps a dataset name to the paper column it is compared with
(``miniImageNet`` or ``tieredImageNet``); unmapped datasets get no published values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PAPER_COLUMNS = ("miniImageNet", "tieredImageNet")
TITLES = {
    "table1": "Table 1: comparison on few-shot image classification (5-way)",
    "table2": "Table 2: ablation of the search method (5-way)",
}


def _paper_datasets(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name or column not in PAPER_COLUMNS:
            raise ValueError(f"--paper-dataset: expected NAME=COLUMN with COLUMN in {list(PAPER_COLUMNS)}, got {pair!r}")
        mapping[name] = column
    return mapping


def _read_runs(paths: list[Path]):
    from metantk_nas.report.results import read_run

    return [read_run(path) for path in paths]


def _table(args: argparse.Namespace) -> int:
    from metantk_nas import provenance
    from metantk_nas.report.tables import build_rows, write_table

    from metantk_nas.report.results import read_baseline

    mapping = _paper_datasets(args.paper_dataset)
    baselines = [read_baseline(path) for path in getattr(args, "baselines", [])]
    rows = build_rows(_read_runs(args.runs), args.command_name, mapping, baselines)
    record = provenance.collect({"runs": [str(p) for p in args.runs],
                                 "baselines": [str(p) for p in getattr(args, "baselines", [])],
                                 "paper_datasets": mapping}, None)
    for path in write_table(rows, args.out, TITLES[args.command_name], record):
        print(path)
    return 0


def _figures(args: argparse.Namespace) -> int:
    from metantk_nas.report.figures import (
        ABLATION_METHODS,
        ablation_figure,
        search_cost_figure,
        search_trace_figure,
    )
    from metantk_nas.report.tables import build_rows
    from metantk_nas.search.trace import read_trace

    runs = _read_runs(args.runs)
    ablation = [r for r in runs if r.dataset == args.ablation_dataset and r.method in ABLATION_METHODS]
    if not ablation:
        raise ValueError(f"--ablation-dataset {args.ablation_dataset!r}: no ablation runs among --runs")
    rows = build_rows(ablation, "table2", _paper_datasets(args.paper_dataset))
    traces = [(run, read_trace(run.path / "search" / "trace.csv")) for run in runs]
    paths = ablation_figure(rows, args.out) + search_cost_figure(runs, args.out)
    paths += search_trace_figure(traces, args.out)
    for path in paths:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``report table1|table2|figures``."""
    report = subparsers.add_parser("report", help="tables and figures beside the paper's published values",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = report.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    for name in ("table1", "table2"):
        table = commands.add_parser(name, help=f"{TITLES[name]} (CSV + Markdown + JSON)")
        table.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders")
        table.add_argument("--out", type=Path, required=True, help="CSV file; .md and .json are written beside it")
        table.add_argument("--paper-dataset", nargs="*", default=[], metavar="NAME=COLUMN")
        if name == "table1":
            table.add_argument("--baselines", nargs="*", type=Path, default=[],
                               help="baseline run folders (DATASET/baselines/NAME/seed<seed>)")
        table.set_defaults(func=_table, command_name=name)
    figures = commands.add_parser("figures", help="ablation bars, search cost, pruning traces (SVG + PNG)")
    figures.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders")
    figures.add_argument("--out", type=Path, required=True, help="output folder")
    figures.add_argument("--ablation-dataset", required=True, help="dataset of the ablation bars")
    figures.add_argument("--paper-dataset", nargs="*", default=[], metavar="NAME=COLUMN")
    figures.set_defaults(func=_figures)

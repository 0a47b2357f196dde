"""Figures of the report: the ablation bars, the search cost per method and the pruning traces.

Each figure is written as SVG and PNG (atomically). The cells of every run are drawn by
``metantk-nas arch draw`` (:func:`metantk_nas.space.draw_genotype`), one job per run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metantk_nas.io import save_figure
from metantk_nas.report.results import SHOTS, RunResult
from metantk_nas.report.tables import method_label
from metantk_nas.search.methods import METHODS, table_methods

#: The search methods of the ablation, in the paper's Table 2 order.
ABLATION_METHODS = table_methods("table2")


def _std(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def ablation_figure(rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Grouped bars: accuracy per method (bars) and cell count (groups), one panel per shot.

    Args:
        rows: Table 2 rows (:func:`metantk_nas.report.tables.build_rows`).
        out_dir: folder of ``ablation.svg`` / ``ablation.png``.
    """
    import matplotlib.pyplot as plt

    methods = [m for m in ABLATION_METHODS if any(r["method"] == m for r in rows)]
    cells = sorted({r["cells"] for r in rows})
    figure, axes = plt.subplots(1, len(SHOTS), figsize=(4.5 * len(SHOTS), 3.6), squeeze=False)
    width = 0.8 / max(len(methods), 1)
    for ax, shot in zip(axes[0], SHOTS):
        for index, method in enumerate(methods):
            xs, means, errors, paper_x, paper_y = [], [], [], [], []
            for group, count in enumerate(cells):
                row = next((r for r in rows if r["method"] == method and r["cells"] == count), None)
                if row is None:
                    continue
                x = group + (index - (len(methods) - 1) / 2) * width
                xs.append(x)
                means.append(row[f"acc_{shot}shot_mean"])
                errors.append(row[f"acc_{shot}shot_std"] or 0.0)
                if row[f"acc_{shot}shot_paper_mean"] is not None:
                    paper_x.append(x)
                    paper_y.append(row[f"acc_{shot}shot_paper_mean"])
            ax.bar(xs, means, width, yerr=errors, capsize=3, label=method_label(method))
            if paper_x:
                ax.scatter(paper_x, paper_y, marker="_", s=200, color="black", zorder=3,
                           label="paper" if index == 0 else None)
        values = [r[f"acc_{shot}shot_mean"] for r in rows]
        low = min(values + [r[f"acc_{shot}shot_paper_mean"] for r in rows if r[f"acc_{shot}shot_paper_mean"]])
        ax.set_ylim(max(0.0, low - 10.0), min(100.0, max(values) + 8.0))
        ax.set_xticks(range(len(cells)), [f"{c} cells" for c in cells])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"5-way {shot}-shot")
    dataset = rows[0]["dataset"] if rows else ""
    axes[0][0].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"Ablation on {dataset} (mean ± std over seeds)")
    return save_figure(figure, out_dir, "ablation")


def search_cost_figure(runs: Sequence[RunResult], out_dir: str | Path) -> list[Path]:
    """Bars of the search hours per method (mean ± std over seeds), one group per dataset and cell count."""
    import matplotlib.pyplot as plt

    groups = sorted({(run.dataset, run.cells) for run in runs})
    methods = [m for m in METHODS if any(run.method == m for run in runs)]
    figure, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * max(len(methods), 1) / 2), 3.6))
    width = 0.8 / max(len(methods), 1)
    for index, method in enumerate(methods):
        xs, means, errors = [], [], []
        for group, (dataset, cells) in enumerate(groups):
            hours = [r.search_hours for r in runs if (r.dataset, r.cells, r.method) == (dataset, cells, method)]
            if hours:
                xs.append(group + (index - (len(methods) - 1) / 2) * width)
                means.append(statistics.fmean(hours) * 60.0)
                errors.append(_std(hours) * 60.0)
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=method_label(method))
    ax.set_xticks(range(len(groups)), [f"{d}\n{c} cells" for d, c in groups])
    ax.set_ylabel("search cost (minutes)")
    devices = sorted({run.search_device for run in runs})
    ax.set_title(f"Search cost per method (device: {', '.join(devices)})")
    ax.legend(fontsize=7)
    return save_figure(figure, out_dir, "search_cost")


def _number(text: str) -> float:
    """A trace cell as a float; empty cells (no condition number for ``linear-regions``) are NaN."""
    return float(text) if text.strip() else math.nan


def round_series(trace: Sequence[Mapping[str, str]]) -> list[tuple[int, float, float]]:
    """Per pruning round of a ``trace.csv``: (round, mean origin condition number, mean origin region count).

    The origin values are those of the supernet before the round's removals; they repeat for every
    candidate of a repeat, so the mean over the round's rows is the mean over its repeats.
    """
    by_round: dict[int, tuple[list[float], list[float]]] = {}
    for row in trace:
        conds, regions = by_round.setdefault(int(row["round"]), ([], []))
        cond, region = _number(row["cond_origin"]), _number(row["regions_origin"])
        if math.isfinite(cond):
            conds.append(cond)
        if math.isfinite(region):
            regions.append(region)
    return [(r, statistics.fmean(c) if c else math.nan, statistics.fmean(g) if g else math.nan)
            for r, (c, g) in sorted(by_round.items())]


def search_trace_figure(traces: Sequence[tuple[RunResult, Sequence[Mapping[str, str]]]],
                        out_dir: str | Path) -> list[Path]:
    """Condition number (log scale) and region count across pruning rounds, one line per run.

    Lines are coloured by method and dashed for 8 cells, so the seeds of one setting form a bundle.

    Args:
        traces: (run, rows of its ``trace.csv``) pairs (runs without rounds, such as random and fixed
            cells, have empty traces and are skipped).
        out_dir: folder of ``search_trace.svg`` / ``search_trace.png``.
    """
    import matplotlib.pyplot as plt

    figure, (ax_cond, ax_regions) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = {method: f"C{index}" for index, method in enumerate(METHODS)}
    labelled: set[tuple[str, str, int]] = set()
    for run, rows in sorted(traces, key=lambda item: (item[0].dataset, item[0].cells, item[0].method,
                                                               item[0].seed)):
        series = round_series(rows)
        if not series:
            continue
        setting = (run.dataset, run.method, run.cells)
        label = None if setting in labelled else f"{method_label(run.method)}, {run.dataset}, {run.cells} cells"
        labelled.add(setting)
        style = {"color": colours.get(run.method, "black"), "linestyle": "--" if run.cells == 8 else "-",
                 "marker": "o", "markersize": 3, "alpha": 0.8}
        rounds = [s[0] for s in series]
        ax_cond.plot(rounds, [s[1] for s in series], label=label, **style)
        ax_regions.plot(rounds, [s[2] for s in series], **style)
    ax_cond.set_yscale("log")
    ax_cond.set_xlabel("pruning round")
    ax_cond.set_ylabel("condition number (MetaNTK / NTK)")
    ax_regions.set_xlabel("pruning round")
    ax_regions.set_ylabel("linear regions")
    if labelled:
        figure.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        ax_cond.text(0.5, 0.5, "no pruning traces", ha="center", va="center", transform=ax_cond.transAxes)
    figure.suptitle("Pruning trace of every searched run (supernet before each round, mean over repeats)")
    figure.tight_layout()
    return save_figure(figure, out_dir, "search_trace")

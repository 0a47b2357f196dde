"""Figures of the proxy validity study: each proxy's scores against accuracy, and τ per proxy.

Each figure is written as SVG and PNG (atomically, :func:`metantk_nas.io.save_figure`). The rows are those
of :func:`metantk_nas.study.summary.per_architecture` and :func:`metantk_nas.study.summary.summarise`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metantk_nas.io import save_figure

#: Panels per row of the scatter figure.
COLUMNS = 4

#: Marker colour of each shot count (1-shot filled, 5-shot hollow in the scatter figure).
SHOT_COLOURS = {1: "C0", 5: "C1"}


def _interval(row: Mapping[str, Any], shot: int) -> str:
    """``τ₁ = 0.41 [0.12, 0.63]`` of one summary row (``n/a`` for an undefined τ or interval)."""
    subscript = str(shot).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
    tau, low, high = (float(row[f"tau_{shot}shot{suffix}"]) for suffix in ("", "_low", "_high"))
    text = f"τ{subscript} = " + ("n/a" if math.isnan(tau) else f"{tau:.2f}")
    return text + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")


def scatter_figure(per_arch_rows: Sequence[Mapping[str, Any]], summary_rows: Sequence[Mapping[str, Any]],
                   out_dir: str | Path) -> list[Path]:
    """One panel per proxy of ``summary_rows``: each architecture's mean score (± std over seeds) against its
    1-shot (filled) and 5-shot (hollow) accuracy, titled with the label and τ [95% interval].

    The x axis is logarithmic when every score is positive and they span more than three decades (params,
    FLOPs, SynFlow), so that the architectures do not crowd into one corner; infinite scores cannot be drawn
    and are left out (τ still ranks them).

    Args:
        per_arch_rows: :func:`metantk_nas.study.summary.per_architecture` rows.
        summary_rows: :func:`metantk_nas.study.summary.summarise` rows (the panels and their order).
        out_dir: folder of ``proxies_scatter.svg`` / ``proxies_scatter.png``.
    """
    import matplotlib.pyplot as plt

    if not summary_rows:
        raise ValueError("no proxy to draw")
    columns = min(COLUMNS, len(summary_rows))
    lines = math.ceil(len(summary_rows) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.4 * columns, 3.0 * lines), squeeze=False,
                                 layout="constrained")
    for ax, summary in zip(axes.flat, summary_rows):
        points = [r for r in per_arch_rows
                  if r["proxy"] == summary["proxy"] and math.isfinite(float(r["score_mean"]))]
        x = [float(r["score_mean"]) for r in points]
        errors = [float(r["score_std"]) if int(r["seeds"]) > 1 else 0.0 for r in points]
        for shot in (1, 5):
            ax.errorbar(x, [float(r[f"acc_{shot}shot"]) for r in points], xerr=errors if any(errors) else None,
                        fmt="o", markersize=4, capsize=2, elinewidth=0.6, color=SHOT_COLOURS[shot],
                        markerfacecolor=SHOT_COLOURS[shot] if shot == 1 else "none", label=f"{shot}-shot")
        if x and min(x) > 0 and max(x) / min(x) > 1e3:
            ax.set_xscale("log")
        else:  # parameter and MAC counts: a power of ten beside the axis, not ten-digit tick labels
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        direction = "higher" if int(summary["higher_is_better"]) else "lower"
        ax.set_xlabel(f"score ({direction} is better)", fontsize=8)
        ax.set_ylabel("test accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{summary['label']}\n{_interval(summary, 1)}   {_interval(summary, 5)}", fontsize=8)
    for ax in axes.flat[len(summary_rows):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=7)
    figure.suptitle("Proxy score against trained accuracy (one point per architecture)")
    return save_figure(figure, out_dir, "proxies_scatter")


def tau_figure(summary_rows: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Kendall τ of each proxy with 1-shot and 5-shot accuracy, with its bootstrap interval, one line per proxy
    (first proxy on top) and a line at τ = 0 (a proxy no better than chance); an undefined τ (a constant
    proxy) is marked ``n/a``.

    The intervals are drawn as lines from low to high rather than as error bars around τ: a percentile
    bootstrap interval need not contain its point estimate.

    Args:
        summary_rows: :func:`metantk_nas.study.summary.summarise` rows.
        out_dir: folder of ``proxies_tau.svg`` / ``proxies_tau.png``.
    """
    import matplotlib.pyplot as plt

    if not summary_rows:
        raise ValueError("no proxy to draw")
    figure, ax = plt.subplots(figsize=(6.0, 1.0 + 0.45 * len(summary_rows)))
    positions = range(len(summary_rows))
    for shot, offset in ((1, -0.15), (5, 0.15)):
        ys = [p + offset for p in positions]
        lows = [float(r[f"tau_{shot}shot_low"]) for r in summary_rows]
        highs = [float(r[f"tau_{shot}shot_high"]) for r in summary_rows]
        ax.hlines(ys, lows, highs, color=SHOT_COLOURS[shot], linewidth=1.5)
        taus = [float(r[f"tau_{shot}shot"]) for r in summary_rows]
        ax.plot(taus, ys, "o", color=SHOT_COLOURS[shot], label=f"{shot}-shot")
        for tau, y in zip(taus, ys):
            if math.isnan(tau):
                ax.text(0.0, y, " n/a", va="center", fontsize=7, color=SHOT_COLOURS[shot])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(list(positions), [str(r["label"]) for r in summary_rows])
    ax.set_ylim(len(summary_rows) - 0.5, -0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Kendall τ with trained accuracy (95% bootstrap interval)")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(figure, out_dir, "proxies_tau")

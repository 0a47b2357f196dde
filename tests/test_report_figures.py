"""The report figures: the numbers they draw, and the SVG and PNG files they are written to."""

from __future__ import annotations

import math
import re
import struct

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

from _report_helpers import make_run
from metantk_nas.cli import main
from metantk_nas.report import figures
from metantk_nas.report.figures import round_series
from metantk_nas.report.results import read_run
from metantk_nas.report.tables import build_rows
from metantk_nas.search.trace import read_trace

METHODS = ("metantk-nas", "te-nas", "random")
#: Accuracy offset of each method, so that every bar has its own height.
OFFSET = {"metantk-nas": 2.0, "te-nas": 1.0, "random": 0.0}


def _runs(results):
    """2 cell counts × 3 methods × seeds 1, 2: 1-shot accuracy 60 + offset + seed (+ 3 at 8 cells), search hours 0.2 × seed."""
    return [make_run(results, "mini", cells, method, seed, acc1=60.0 + OFFSET[method] + seed + (cells == 8) * 3,
                     acc5=78.0 + OFFSET[method] + seed, params=10**6, hours=0.2 * seed,
                     rounds=3 if method != "random" else 0)
            for cells in (5, 8) for method in METHODS for seed in (1, 2)]


def _svg_texts(path) -> set[str]:
    """Every text of a matplotlib SVG (drawn as paths; matplotlib writes each string in a comment before it)."""
    return set(re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8")))


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def _svg_size_pt(path) -> tuple[float, float]:
    match = re.search(r'<svg[^>]* width="([0-9.]+)pt" height="([0-9.]+)pt"', path.read_text(encoding="utf-8"))
    return float(match.group(1)), float(match.group(2))


def test_figures_cli_writes_every_figure(tmp_path):
    results = tmp_path / "results"
    out = results / "figures"
    assert main(["report", "figures", "--runs", *map(str, _runs(results)), "--ablation-dataset", "mini",
                 "--paper-dataset", "mini=miniImageNet", "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{stem}.{fmt}" for stem in ("ablation", "search_cost", "search_trace") for fmt in ("svg", "png"))
    labels = {"MetaNTK-NAS", "TE-NAS", "Random Cell"}
    assert labels | {"Ablation on mini (mean ± std over seeds)", "5-way 1-shot", "5-way 5-shot", "test accuracy (%)",
                     "5 cells", "8 cells", "paper"} <= _svg_texts(out / "ablation.svg")
    assert labels | {"Search cost per method (device: cpu)", "search cost (minutes)", "mini", "5 cells",
                     "8 cells"} <= _svg_texts(out / "search_cost.svg")
    trace_texts = _svg_texts(out / "search_trace.svg")
    assert {"pruning round", "condition number (MetaNTK / NTK)", "linear regions",
            "MetaNTK-NAS, mini, 5 cells", "MetaNTK-NAS, mini, 8 cells", "TE-NAS, mini, 5 cells",
            "TE-NAS, mini, 8 cells"} <= trace_texts
    assert not any(text.startswith("Random Cell") for text in trace_texts)  # a random cell has no pruning trace
    for stem in ("ablation", "search_cost", "search_trace"):
        # the PNG is the SVG's drawing at 150 dpi (the SVG is in points, 72 per inch); each is cropped to
        # its own renderer's text extents, which differ by a few pixels
        width, height = _png_size(out / f"{stem}.png")
        width_pt, height_pt = _svg_size_pt(out / f"{stem}.svg")
        assert (width, height) == pytest.approx((width_pt * 150 / 72, height_pt * 150 / 72), rel=0.01), stem
        assert width > 600 and height > 500, stem  # a real plot: more than 4 × 3.3 inches


def _captured(monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda figure, out_dir, stem: drawn.append(figure) or [])
    return drawn


def test_ablation_bars_are_the_mean_and_std_over_seeds_beside_the_paper(tmp_path, monkeypatch):
    rows = build_rows([read_run(run) for run in _runs(tmp_path)], "table2", {"mini": "miniImageNet"})
    drawn = _captured(monkeypatch)
    figures.ablation_figure(rows, tmp_path)
    [figure] = drawn
    paper = {("metantk-nas", 1): (63.88, 64.26), ("te-nas", 1): (62.51, 63.51), ("random", 1): (62.55, 62.76),
             ("metantk-nas", 5): (80.07, 80.35), ("te-nas", 5): (79.02, 79.86), ("random", 5): (78.90, 79.18)}
    for ax, shot in zip(figure.axes, (1, 5)):
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert [bar.get_label() for bar in bars] == ["MetaNTK-NAS", "TE-NAS", "Random Cell"]
        for bar, method in zip(bars, METHODS):
            base = (60.0 if shot == 1 else 78.0) + OFFSET[method] + 1.5  # mean of seeds 1 and 2
            expected = [base, base + (3.0 if shot == 1 else 0.0)]  # 5 cells, 8 cells
            assert [patch.get_height() for patch in bar.patches] == pytest.approx(expected)
            errors = bar.errorbar.lines[2][0].get_segments()
            assert [segment[1][1] - segment[0][1] for segment in errors] == pytest.approx([2 * math.sqrt(0.5)] * 2)
        # a paper marker at the centre of every bar, at the published mean
        markers = sorted((round(float(x), 6), float(y)) for c in ax.collections if isinstance(c, PathCollection)
                         for x, y in c.get_offsets())
        expected = sorted((round(patch.get_x() + patch.get_width() / 2, 6), value) for bar, method in zip(bars, METHODS)
                          for patch, value in zip(bar.patches, paper[method, shot]))
        assert markers == expected


def test_search_cost_bars_are_minutes_per_method(tmp_path, monkeypatch):
    drawn = _captured(monkeypatch)
    figures.search_cost_figure([read_run(run) for run in _runs(tmp_path)], tmp_path)
    [figure] = drawn
    bars = [c for c in figure.axes[0].containers if isinstance(c, BarContainer)]
    assert sorted(bar.get_label() for bar in bars) == ["MetaNTK-NAS", "Random Cell", "TE-NAS"]
    for bar in bars:  # seeds searched 0.2 h and 0.4 h: 18 minutes on average, at 5 and at 8 cells
        assert [patch.get_height() for patch in bar.patches] == pytest.approx([18.0, 18.0])


def test_round_series_averages_repeats(tmp_path):
    run = make_run(tmp_path, "mini", 5, "metantk-nas", 1, acc1=60, acc5=70, params=1, hours=0.1, rounds=2)
    series = round_series(read_trace(run / "search" / "trace.csv"))
    assert [s[0] for s in series] == [0, 1]
    assert series[0][1] == pytest.approx(1000.5) and series[1][1] == pytest.approx(500.5)
    assert series[1][2] == pytest.approx(490.0)


def test_figures_need_ablation_runs(tmp_path, capsys):
    run = make_run(tmp_path / "results", "mini", 5, "metanas", 1, acc1=60, acc5=70, params=1, hours=0.0)
    assert main(["report", "figures", "--runs", str(run), "--ablation-dataset", "mini",
                 "--out", str(tmp_path / "f")]) == 1
    assert "no ablation runs" in capsys.readouterr().err


def test_round_series_accepts_linear_regions_traces_without_condition_numbers():
    """A ``linear-regions`` search writes empty condition-number cells (ΔC ≡ 0)."""
    rows = [{"round": "0", "cond_origin": "", "regions_origin": "101"},
            {"round": "0", "cond_origin": "", "regions_origin": "103"}]
    [(round_index, cond, regions)] = round_series(rows)
    assert round_index == 0 and cond != cond and regions == pytest.approx(102.0)

"""The report figures are written as SVG and PNG from synthetic run folders."""

from __future__ import annotations

import pytest

from _report_helpers import make_run
from metantk_nas.cli import main
from metantk_nas.report.figures import round_series
from metantk_nas.search.trace import read_trace


def test_figures_cli_writes_every_figure(tmp_path):
    results = tmp_path / "results"
    runs = [make_run(results, "mini", cells, method, seed, acc1=60.0 + seed, acc5=78.0 + seed, params=10**6,
                     hours=0.2 * seed, rounds=3 if method != "random" else 0)
            for cells in (5, 8) for method in ("metantk-nas", "te-nas", "random") for seed in (1, 2)]
    out = results / "figures"
    assert main(["report", "figures", "--runs", *map(str, runs), "--ablation-dataset", "mini",
                 "--paper-dataset", "mini=miniImageNet", "--out", str(out)]) == 0
    for stem in ("ablation", "search_cost", "search_trace"):
        for fmt in ("svg", "png"):
            path = out / f"{stem}.{fmt}"
            assert path.stat().st_size > 1000, path
    assert (out / "ablation.svg").read_text().count("<svg") == 1


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

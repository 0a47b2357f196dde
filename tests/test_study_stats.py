"""The proxy validity study: rank correlations against scipy and by hand, bootstrap intervals, the per-proxy
summary on synthetic proxies whose answer is known, and the two figures."""

from __future__ import annotations

import csv
import math
import re

import matplotlib
import numpy as np
import pytest
from scipy import stats as scipy_stats

from metantk_nas.study import figures
from metantk_nas.study.stats import average_ranks, bootstrap_interval, kendall_tau, spearman_rho
from metantk_nas.study.summary import PER_ARCHITECTURE_COLUMNS, SUMMARY_COLUMNS, per_architecture, summarise

matplotlib.use("Agg")


# --- rank correlations -------------------------------------------------------------------------------------


def test_average_ranks_share_the_mean_rank_of_ties():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([-math.inf, 0.0, -math.inf]).tolist() == [1.5, 3.0, 1.5]
    values = np.random.default_rng(0).integers(0, 6, size=50)
    np.testing.assert_array_equal(average_ranks(values), scipy_stats.rankdata(values))


@pytest.mark.parametrize("n", [2, 3, 10, 57])
def test_correlations_equal_scipy_on_data_with_ties(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        x, y = rng.integers(0, 4, size=n).astype(float), rng.integers(0, 7, size=n) + rng.normal(size=n) * (n > 10)
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=1e-12)
        assert spearman_rho(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)


def test_correlations_by_hand():
    # Pairs of [1, 2, 3, 4] / [1, 3, 2, 4]: 5 concordant, 1 discordant (2-3): τ = 4/6; Σd² = 2: ρ = 1 − 12/60.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # τ-b: x ties one pair, so (P − Q) = 5 over sqrt(5 · 6).
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))


def test_infinite_scores_tie_with_each_other_and_rank_last():
    x, y = [-math.inf, -math.inf, 1.0, 2.0, 0.5], [0.0, 1.0, 3.0, 4.0, 2.0]
    finite = [-1e300, -1e300, 1.0, 2.0, 0.5]
    assert kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(finite, y).statistic)
    assert spearman_rho(x, y) == pytest.approx(scipy_stats.spearmanr(finite, y).statistic)


def test_correlations_are_nan_for_constant_or_nan_input():
    for statistic in (kendall_tau, spearman_rho):
        assert math.isnan(statistic([3, 3, 3], [1, 2, 3]))
        assert math.isnan(statistic([1, 2, 3], [5, 5, 5]))
        assert math.isnan(statistic([1], [2]))
        assert math.isnan(statistic([1, math.nan, 3], [1, 2, 3]))
        with pytest.raises(ValueError, match="length"):
            statistic([1, 2, 3], [1, 2])


# --- bootstrap ---------------------------------------------------------------------------------------------


def _noisy_monotone(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, size=n)
    return x, x + rng.normal(scale=3.0, size=n)


def test_bootstrap_is_deterministic_for_a_seed_and_contains_the_estimate():
    x, y = _noisy_monotone(30, 1)
    first = bootstrap_interval(x, y, kendall_tau, resamples=500, seed=7)
    assert first == bootstrap_interval(x, y, kendall_tau, resamples=500, seed=7)
    assert first != bootstrap_interval(x, y, kendall_tau, resamples=500, seed=8)
    low, high = first
    assert low < kendall_tau(x, y) < high
    assert 0.0 < low < high < 1.0


def test_bootstrap_narrows_with_more_architectures():
    widths = {}
    for n in (10, 200):
        low, high = bootstrap_interval(*_noisy_monotone(n, 2), kendall_tau, resamples=400, seed=0)
        widths[n] = high - low
    assert widths[200] < widths[10] / 2


def test_bootstrap_ignores_undefined_replicates_and_checks_its_arguments():
    assert all(math.isnan(v) for v in bootstrap_interval([1, 1, 1], [1, 2, 3], kendall_tau, resamples=50))
    assert all(math.isnan(v) for v in bootstrap_interval([], [], kendall_tau, resamples=50))
    # Two architectures: half the resamples repeat one of them (NaN), the others give ±1.
    low, high = bootstrap_interval([1, 2], [1, 2], kendall_tau, resamples=200)
    assert low == high == 1.0
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1, 2], [1, 2], kendall_tau, level=1.5)


# --- summary -----------------------------------------------------------------------------------------------

DIRECTIONS = {"good": True, "inverse": False, "noise": True, "absent": True}
LABELS = {"good": "Good proxy", "inverse": "Inverse proxy", "noise": "Noise proxy"}


def _synthetic(n=40, seeds=3):
    """n architectures; proxy ``good`` = 1-shot accuracy + small noise, ``inverse`` = −accuracy (lower is
    better), ``noise`` unrelated; 5-shot accuracy = 1-shot + 15 + noise."""
    rng = np.random.default_rng(3)
    names = [f"arch{i:02d}" for i in range(n)]
    acc1 = dict(zip(names, rng.uniform(40, 60, size=n)))
    acc5 = {name: value + 15 + rng.normal(scale=1.0) for name, value in acc1.items()}
    accuracy = [{"architecture": a, "shots": s, "accuracy": table[a]} for s, table in ((1, acc1), (5, acc5))
                for a in names]
    scores = []
    for a in names:
        for seed in range(seeds):
            scores += [{"architecture": a, "proxy": "good", "seed": seed, "score": acc1[a] + rng.normal(scale=0.1),
                        "seconds": 0.5},
                       {"architecture": a, "proxy": "inverse", "seed": seed, "score": -acc1[a], "seconds": 2.0},
                       {"architecture": a, "proxy": "noise", "seed": seed, "score": rng.normal(), "seconds": 1.0}]
    return scores, accuracy, acc1, acc5


def test_summary_of_known_proxies():
    scores, accuracy, acc1, acc5 = _synthetic()
    rows = summarise(scores, accuracy, DIRECTIONS, LABELS, resamples=500)
    assert [r["proxy"] for r in rows] == ["good", "inverse", "noise"]
    assert all(tuple(r) == SUMMARY_COLUMNS for r in rows)
    good, inverse, noise = rows
    assert good["label"] == "Good proxy" and good["higher_is_better"] == 1 and inverse["higher_is_better"] == 0
    assert good["architectures"] == 40 and good["seeds"] == 3
    assert good["tau_1shot"] > 0.95 and good["rho_1shot"] > 0.99
    assert inverse["tau_1shot"] == inverse["rho_1shot"] == 1.0
    assert inverse["tau_1shot_low"] == inverse["tau_1shot_high"] == 1.0
    assert 0.5 < inverse["tau_5shot"] < 1.0
    assert abs(noise["tau_1shot"]) < 0.3 and noise["tau_1shot_low"] < 0.0 < noise["tau_1shot_high"]
    assert good["tau_1shot_low"] <= good["tau_1shot"] <= good["tau_1shot_high"]
    # The proxy that is −accuracy ranks the most accurate architecture first.
    best = max(acc1, key=acc1.get)
    assert inverse["top1_architecture"] == best
    assert inverse["top1_rank_1shot"] == 1 and inverse["top1_acc_1shot"] == round(acc1[best], 4)
    assert inverse["top1_rank_5shot"] == 1 + sum(value > acc5[best] for value in acc5.values())
    assert inverse["top1_acc_5shot"] == round(acc5[best], 4)
    assert inverse["seed_spread"] == 0.0 and 0.0 < good["seed_spread"] < 0.05
    assert good["seconds_per_architecture"] == 0.5 and inverse["seconds_per_architecture"] == 2.0
    for row in rows:
        for column in SUMMARY_COLUMNS:
            if isinstance(row[column], float) and math.isfinite(row[column]):
                assert row[column] == round(row[column], 4), column


def test_summary_intervals_are_paired_across_proxies():
    scores, accuracy, _, _ = _synthetic(n=15)
    good = [row for row in scores if row["proxy"] == "good"]
    twin = [{**row, "proxy": "twin"} for row in good]
    rows = summarise(good + twin, accuracy, {"good": True, "twin": True}, {}, resamples=200, seed=4)
    assert [r["label"] for r in rows] == ["good", "twin"]
    assert {k: v for k, v in rows[0].items() if k not in ("proxy", "label")} == \
        {k: v for k, v in rows[1].items() if k not in ("proxy", "label")}


def _small():
    """3 architectures, 2 seeds: proxy ``p`` means 2, 4, 7 (stds 1, 0, 1); 1-shot accuracy 50, 60, 55."""
    scores = [{"architecture": a, "proxy": "p", "seed": s, "score": v, "seconds": t}
              for a, s, v, t in (("a", 0, 1.0, 0.5), ("a", 1, 3.0, 1.5), ("b", 0, 4.0, 1.0), ("b", 1, 4.0, 1.0),
                                 ("c", 0, 6.0, 2.0), ("c", 1, 8.0, 3.0))]
    accuracy = [{"architecture": a, "shots": s, "accuracy": v}
                for a, s, v in (("a", 1, 50.0), ("b", 1, 60.0), ("c", 1, 55.0), ("a", 5, 70.0), ("c", 5, 72.5))]
    return scores, accuracy


def test_summary_by_hand_from_csv_text(tmp_path):
    scores, accuracy = _small()
    for name, rows in (("scores", scores), ("accuracy", accuracy)):
        with open(tmp_path / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with open(tmp_path / "scores.csv", newline="") as s, open(tmp_path / "accuracy.csv", newline="") as a:
        text_scores, text_accuracy = list(csv.DictReader(s)), list(csv.DictReader(a))
    assert isinstance(text_scores[0]["score"], str)
    (row,) = summarise(text_scores, text_accuracy, {"p": True}, {"p": "P"}, resamples=100)
    assert row == summarise(scores, accuracy, {"p": True}, {"p": "P"}, resamples=100)[0]
    assert row["architectures"] == 3 and row["seeds"] == 2
    # Ranks by score a < b < c; by 1-shot accuracy a < c < b: pairs ab, ac agree, bc disagrees.
    assert row["tau_1shot"] == round(1 / 3, 4)
    assert row["tau_5shot"] == 1.0  # b has no 5-shot accuracy: a and c only
    assert row["top1_architecture"] == "c"
    assert (row["top1_acc_1shot"], row["top1_rank_1shot"]) == (55.0, 2)
    assert (row["top1_acc_5shot"], row["top1_rank_5shot"]) == (72.5, 1)
    # Mean within-architecture std (1 + 0 + 1)/3 over the std of the means 2, 4, 7 (ddof 0: sqrt(114/27)).
    assert row["seed_spread"] == round((2 / 3) / math.sqrt(114 / 27), 4)
    assert row["seconds_per_architecture"] == 1.5


def test_summary_orientation_ties_and_missing_accuracy():
    scores, accuracy = _small()
    # Lower is better: a (mean 2) ranks first; its 5-shot accuracy 70 is below c's 72.5.
    (row,) = summarise(scores, accuracy, {"p": False}, {}, resamples=50)
    assert row["tau_1shot"] == round(-1 / 3, 4) and row["top1_architecture"] == "a"
    assert (row["top1_rank_1shot"], row["top1_rank_5shot"]) == (3, 2)
    # Tied best scores go to the first name; tied accuracies share the best rank; no 5-shot accuracy: NaN.
    tied = [{"architecture": a, "proxy": "q", "seed": 0, "score": v, "seconds": 1.0}
            for a, v in (("c", 5.0), ("b", 5.0), ("a", 1.0))]
    accuracy = [{"architecture": a, "shots": 1, "accuracy": v} for a, v in (("a", 60.0), ("b", 60.0), ("c", 50.0))]
    (row,) = summarise(tied, accuracy, {"q": True}, {}, resamples=50)
    assert row["top1_architecture"] == "b" and row["top1_rank_1shot"] == 1
    assert math.isnan(row["top1_acc_5shot"]) and math.isnan(row["top1_rank_5shot"])
    assert math.isnan(row["tau_5shot"]) and math.isnan(row["tau_5shot_low"])
    assert row["seed_spread"] == 0.0
    # Every architecture scores the same: no spread to rank on, no correlation.
    flat = [{**r, "score": 1.0} for r in tied]
    (row,) = summarise(flat, accuracy, {"q": True}, {}, resamples=50)
    assert math.isnan(row["seed_spread"]) and math.isnan(row["tau_1shot"])


def test_summary_refuses_ambiguous_records():
    scores, accuracy = _small()
    with pytest.raises(ValueError, match="no direction"):
        summarise(scores, accuracy, {}, {})
    with pytest.raises(ValueError, match="repeated score"):
        summarise(scores + scores[:1], accuracy, {"p": True}, {})
    with pytest.raises(ValueError, match="repeated 1-shot"):
        summarise(scores, accuracy + accuracy[:1], {"p": True}, {})
    with pytest.raises(ValueError, match="shots"):
        summarise(scores, [{"architecture": "a", "shots": 2, "accuracy": 1.0}], {"p": True}, {})


def test_per_architecture_rows():
    scores, accuracy = _small()
    rows = per_architecture(scores, accuracy)
    assert all(tuple(r) == PER_ARCHITECTURE_COLUMNS for r in rows)
    assert [(r["architecture"], r["score_mean"], r["score_std"], r["seeds"]) for r in rows] == \
        [("a", 2.0, 1.0, 2), ("b", 4.0, 0.0, 2), ("c", 7.0, 1.0, 2)]
    assert rows[1]["acc_1shot"] == 60.0 and math.isnan(rows[1]["acc_5shot"])


# --- figures -----------------------------------------------------------------------------------------------


def _svg_texts(path) -> set[str]:
    """Every text of a matplotlib SVG (drawn as paths; matplotlib writes each string in a comment before it)."""
    return set(re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8")))


def test_figures_draw_every_proxy(tmp_path, monkeypatch):
    scores, accuracy, _, _ = _synthetic(n=12, seeds=2)
    names = sorted({row["architecture"] for row in scores})
    # A parameter count (positive, spanning decades: log axis), a NASWOT with one −inf, a constant proxy (τ NaN).
    for index, name in enumerate(names):
        scores += [{"architecture": name, "proxy": "params", "seed": 0, "score": 10.0 ** (2 + index / 2),
                    "seconds": 0.1},
                   {"architecture": name, "proxy": "naswot", "seed": 0, "score": -math.inf if index == 0 else index,
                    "seconds": 0.1},
                   {"architecture": name, "proxy": "flat", "seed": 0, "score": 3.0, "seconds": 0.1}]
    directions = {**DIRECTIONS, "params": True, "naswot": True, "flat": True}
    labels = {**LABELS, "params": "Parameters", "naswot": "NASWOT", "flat": "Constant"}
    summary = summarise(scores, accuracy, directions, labels, resamples=100)
    drawn = []
    real = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda figure, *args: drawn.append(figure) or real(figure, *args))

    paths = figures.scatter_figure(per_architecture(scores, accuracy), summary, tmp_path)
    paths += figures.tau_figure(summary, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"proxies_{stem}.{fmt}" for stem in ("scatter", "tau")
                                                   for fmt in ("svg", "png"))
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "proxies_scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stem in ("scatter", "tau"):
        assert set(labels.values()) <= _svg_texts(tmp_path / f"proxies_{stem}.svg"), stem

    scatter, tau = drawn
    panels = [ax for ax in scatter.axes if ax.get_visible()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == [row["label"] for row in summary]
    assert [ax.get_xscale() for ax in panels] == ["linear", "linear", "linear", "log", "linear", "linear"]
    assert "τ₁ = n/a" in panels[-1].get_title()
    assert f"τ₁ = {summary[1]['tau_1shot']:.2f} [" in panels[1].get_title()
    # One 1-shot and one 5-shot series per panel, 12 points each (the −inf NASWOT score is left out).
    assert [len(line.get_xdata()) for line in panels[4].lines if line.get_linestyle() == "None"] == [11, 11]
    (ax,) = tau.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [row["label"] for row in summary]
    taus = [line.get_xdata().tolist() for line in ax.lines if line.get_linestyle() == "None"]
    assert taus[0][:3] == [row["tau_1shot"] for row in summary][:3]


def test_rank_sum_scores_sum_the_ranks_of_each_oriented_proxy() -> None:
    from metantk_nas.study.summary import rank_sum_scores

    # lower-is-better "cond": a best (1.0), c next, b worst; higher-is-better "regions": b best, then a, c
    rows = [{"architecture": arch, "proxy": proxy, "seed": 0, "score": score, "seconds": 1.0}
            for arch, proxy, score in [("a", "cond", 1.0), ("b", "cond", 9.0), ("c", "cond", 5.0),
                                       ("a", "regions", 20), ("b", "regions", 30), ("c", "regions", 20)]]
    combined = rank_sum_scores(rows, "both", ["cond", "regions"], {"cond": False, "regions": True})
    # ranks: cond a 1, c 2, b 3; regions b 1, a and c tie at 2.5 -> sums a 3.5, b 4, c 4.5
    assert [(r["architecture"], r["score"], r["seconds"]) for r in combined] == [
        ("a", -3.5, 2.0), ("b", -4.0, 2.0), ("c", -4.5, 2.0)]
    assert rank_sum_scores(rows, "x", ["cond", "naswot"], {"cond": False, "naswot": True}) == []

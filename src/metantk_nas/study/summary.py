"""One row per proxy: how well its ranking of architectures predicts their trained few-shot accuracy.

Inputs are plain records, as ``csv.DictReader`` reads them (every value may be a string):

* scores: ``architecture``, ``proxy``, ``seed``, ``score``, ``seconds``: one row per architecture × proxy ×
  proxy seed (``seconds``: the time of that one evaluation);
* accuracy: ``architecture``, ``shots`` (1 or 5), ``accuracy``: the mean test accuracy (%) of the trained
  architecture over the test tasks.

An architecture's score is the mean over its seeds, *oriented* before it is compared with accuracy: negated
when lower is better, so that a positive τ or ρ always means "the proxy ranks architectures as accuracy
does". A NaN score (a proxy that failed) makes that proxy's correlations NaN rather than being dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from metantk_nas.study.stats import average_ranks, bootstrap_interval, kendall_tau, spearman_rho

#: The shot counts whose accuracy a proxy is compared with.
SHOTS = (1, 5)

#: The columns of :func:`summarise`'s rows (for ``metantk_nas.io.write_csv``).
SUMMARY_COLUMNS = (
    "proxy", "label", "higher_is_better", "architectures", "seeds",
    *(f"{name}_{shot}shot{suffix}" for shot in SHOTS for name in ("tau", "rho") for suffix in ("", "_low", "_high")),
    "top1_architecture", *(f"top1_{name}_{shot}shot" for shot in SHOTS for name in ("acc", "rank")),
    "seed_spread", "seconds_per_architecture",
)

#: The columns of :func:`per_architecture`'s rows.
PER_ARCHITECTURE_COLUMNS = ("architecture", "proxy", "score_mean", "score_std", "seeds",
                            *(f"acc_{shot}shot" for shot in SHOTS))

#: (architecture, seed) → (score, seconds) of one proxy's evaluations, grouped by architecture.
_Evaluations = dict[str, dict[str, tuple[float, float]]]


def _read_scores(scores: Iterable[Mapping[str, Any]]) -> dict[str, _Evaluations]:
    """proxy → architecture → seed → (score, seconds); a repeated (architecture, proxy, seed) is an error, as
    it would weigh one evaluation twice."""
    table: dict[str, _Evaluations] = {}
    for row in scores:
        seeds = table.setdefault(str(row["proxy"]), {}).setdefault(str(row["architecture"]), {})
        seed = str(row["seed"])
        if seed in seeds:
            raise ValueError(f"repeated score of architecture {row['architecture']!r}, proxy {row['proxy']!r}, "
                             f"seed {seed}")
        seeds[seed] = (float(row["score"]), float(row["seconds"]))
    return table


def _read_accuracy(accuracy: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    """shots → architecture → accuracy (%); a repeated (architecture, shots) is an error (which one to trust?)."""
    table: dict[int, dict[str, float]] = {shot: {} for shot in SHOTS}
    for row in accuracy:
        shot = int(float(row["shots"]))
        if shot not in table:
            raise ValueError(f"accuracy at {row['shots']} shots: the study compares {SHOTS} shots only")
        architecture = str(row["architecture"])
        if architecture in table[shot]:
            raise ValueError(f"repeated {shot}-shot accuracy of architecture {architecture!r}")
        table[shot][architecture] = float(row["accuracy"])
    return table


def _mean_std(evaluations: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """Mean and standard deviation (ddof 0) of one architecture's scores over seeds."""
    values = np.array([score for score, _ in evaluations.values()], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return float(values.mean()), float(values.std())


def _rounded(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value


def _correlations(oriented: Mapping[str, float], accuracy: Mapping[str, float], shot: int, *, resamples: int,
                  seed: int) -> dict[str, float]:
    """τ and ρ of the oriented scores with ``shot``-shot accuracy over the architectures that have both, and
    their bootstrap intervals, named as in :data:`SUMMARY_COLUMNS`."""
    names = sorted(set(oriented) & set(accuracy))
    x = [oriented[name] for name in names]
    y = [accuracy[name] for name in names]
    result: dict[str, float] = {}
    for key, statistic in (("tau", kendall_tau), ("rho", spearman_rho)):
        low, high = bootstrap_interval(x, y, statistic, resamples=resamples, seed=seed)
        column = f"{key}_{shot}shot"
        result.update({column: statistic(x, y), f"{column}_low": low, f"{column}_high": high})
    return result


def _top1(oriented: Mapping[str, float]) -> str | None:
    """The architecture ranked best: the highest oriented score, ties to the first name in sorted order; None
    when every score is NaN."""
    defined = [name for name in sorted(oriented) if not math.isnan(oriented[name])]
    return max(defined, key=lambda name: oriented[name]) if defined else None


def _seed_spread(moments: Mapping[str, tuple[float, float]]) -> float:
    """Mean within-architecture std over seeds / std of the architectures' mean scores (ddof 0 both): how large
    the proxy's own noise is next to the differences it ranks on (0 with one seed; NaN when every architecture
    scores the same)."""
    means = np.array([mean for mean, _ in moments.values()], dtype=np.float64)
    within = float(np.mean([std for _, std in moments.values()]))
    with np.errstate(invalid="ignore"):
        between = float(means.std())
    return within / between if between != 0.0 else math.nan


def summarise(scores: Iterable[Mapping[str, Any]], accuracy: Iterable[Mapping[str, Any]],
              directions: Mapping[str, bool], labels: Mapping[str, str], *, resamples: int = 2000,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row (:data:`SUMMARY_COLUMNS`) per proxy of ``directions``, in its order; proxies without scores are
    skipped, scores of a proxy without a direction are an error (they could not be oriented).

    A proxy's architectures are those it scored that have an accuracy at some shot count (``architectures``
    counts them; ``seeds`` is the fewest seeds any of them has); each correlation uses those with that shot
    count's accuracy. ``top1_architecture`` is the one the proxy ranks best; ``top1_rank_{k}shot`` its rank
    among them by k-shot accuracy (1 + the number strictly more accurate: ties share the best rank), NaN with
    its accuracy when it has no k-shot accuracy. ``seed_spread``: see :func:`_seed_spread`;
    ``seconds_per_architecture``: the mean time of one evaluation. Every τ and ρ is bootstrapped with the
    same ``seed``, so the intervals of all proxies and shot counts resample the same architectures.

    Args:
        scores, accuracy: the records described in the module docstring.
        directions: proxy → higher_is_better.
        labels: proxy → its label in tables and figures (the proxy's name when missing).
        resamples, seed: of :func:`metantk_nas.study.stats.bootstrap_interval`.
    """
    by_proxy = _read_scores(scores)
    accuracies = _read_accuracy(accuracy)
    undirected = sorted(set(by_proxy) - set(directions))
    if undirected:
        raise ValueError(f"no direction (higher_is_better) for proxies {undirected}")
    measured = set().union(*(set(table) for table in accuracies.values()))
    rows = []
    for proxy, higher_is_better in directions.items():
        evaluations = {name: seeds for name, seeds in by_proxy.get(proxy, {}).items() if name in measured}
        if not evaluations:
            continue
        moments = {name: _mean_std(seeds) for name, seeds in evaluations.items()}
        sign = 1.0 if higher_is_better else -1.0
        oriented = {name: sign * mean for name, (mean, _) in moments.items()}
        top1 = _top1(oriented)
        row: dict[str, Any] = {
            "proxy": proxy, "label": labels.get(proxy, proxy), "higher_is_better": int(bool(higher_is_better)),
            "architectures": len(evaluations), "seeds": min(len(seeds) for seeds in evaluations.values()),
            "top1_architecture": top1,
        }
        for shot in SHOTS:
            shot_accuracy = {name: acc for name, acc in accuracies[shot].items() if name in oriented}
            row.update(_correlations(oriented, shot_accuracy, shot, resamples=resamples, seed=seed))
            if top1 in shot_accuracy:
                best = shot_accuracy[top1]
                row[f"top1_acc_{shot}shot"] = best
                row[f"top1_rank_{shot}shot"] = 1 + sum(acc > best for acc in shot_accuracy.values())
            else:
                row[f"top1_acc_{shot}shot"] = row[f"top1_rank_{shot}shot"] = math.nan
        row["seed_spread"] = _seed_spread(moments)
        row["seconds_per_architecture"] = float(np.mean([seconds for seeds in evaluations.values()
                                                         for _, seconds in seeds.values()]))
        rows.append({column: _rounded(row[column]) if isinstance(row[column], float) else row[column]
                     for column in SUMMARY_COLUMNS})
    return rows


def rank_sum_scores(scores: Iterable[Mapping[str, Any]], name: str, proxies: Sequence[str],
                    directions: Mapping[str, bool]) -> list[dict[str, Any]]:
    """Score rows of a search method's combined score: per seed, minus the sum over ``proxies`` of each
    architecture's rank (1 = best, ties averaged) by the oriented score — the rank sum a search prunes by,
    taken across architectures (higher is better); ``seconds`` is the sum of the proxies' seconds. Architectures
    and seeds missing a proxy's score are left out."""
    table = _read_scores(scores)
    if any(proxy not in table for proxy in proxies):
        return []
    common = set.intersection(*({(arch, seed) for arch, seeds in table[proxy].items() for seed in seeds}
                                for proxy in proxies))
    rows = []
    for seed in sorted({seed for _, seed in common}):
        names = sorted(arch for arch, s in common if s == seed)
        total = np.zeros(len(names))
        seconds = np.zeros(len(names))
        for proxy in proxies:
            sign = 1.0 if directions[proxy] else -1.0
            values = [sign * table[proxy][arch][seed][0] for arch in names]
            total += average_ranks([-value for value in values])  # rank 1 = the best oriented score
            seconds += [table[proxy][arch][seed][1] for arch in names]
        rows += [{"architecture": arch, "proxy": name, "seed": seed, "score": -float(rank), "seconds": float(cost)}
                 for arch, rank, cost in zip(names, total, seconds, strict=True)]
    return rows


def per_architecture(scores: Iterable[Mapping[str, Any]],
                     accuracy: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row (:data:`PER_ARCHITECTURE_COLUMNS`) per (architecture, proxy) that has scores: the mean and std
    (ddof 0) of the score over seeds, its seed count and the architecture's accuracy (NaN when not measured).
    Proxies in the order they first appear, architectures sorted; scores not oriented (the scatter figure
    shows the proxy's own values). The points of the scatter figure."""
    accuracies = _read_accuracy(accuracy)
    rows = []
    for proxy, evaluations in _read_scores(scores).items():
        for name in sorted(evaluations):
            mean, std = _mean_std(evaluations[name])
            rows.append({"architecture": name, "proxy": proxy, "score_mean": mean, "score_std": std,
                         "seeds": len(evaluations[name]),
                         **{f"acc_{shot}shot": accuracies[shot].get(name, math.nan) for shot in SHOTS}})
    return rows

"""Table 1 and Table 2 of the paper, rebuilt from run folders, each number beside the published one.

One row per (method, dataset, cells): the runs of all seeds are aggregated (mean and standard
deviation over seeds, ``ddof=1``; a single seed has no standard deviation). The published values
come from ``published.yaml``; a dataset is compared with a paper column only when the caller maps it
to one (``miniImageNet`` / ``tieredImageNet``), so the embedded glyph dataset shows no paper values
rather than misleading differences.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from metantk_nas.report.results import SHOTS, RunResult
from metantk_nas.search.methods import METHODS

#: Column order of table1.csv and table2.csv.
COLUMNS: tuple[str, ...] = (
    "method", "model", "dataset", "paper_dataset", "cells", "seeds", "architecture", "training",
    "params_m", "params_m_paper", "params_m_diff",
    "search_hours", "search_device", "search_gpu_hours_paper", "search_gpu_hours_diff",
    "acc_1shot_mean", "acc_1shot_std", "acc_1shot_paper_mean", "acc_1shot_paper_std", "acc_1shot_diff",
    "acc_5shot_mean", "acc_5shot_std", "acc_5shot_paper_mean", "acc_5shot_paper_std", "acc_5shot_diff",
)
def method_label(method: str) -> str:
    """A method's row label (the paper's), from the method registry."""
    return METHODS[method].label if method in METHODS else method


@cache
def published() -> dict[str, Any]:
    """The paper's Table 1 and Table 2 (``published.yaml``)."""
    import yaml

    text = resources.files("metantk_nas.report").joinpath("published.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def published_value(table: str, method: str, paper_dataset: str | None, cells: int) -> dict[str, Any] | None:
    """The paper's numbers of one row, as ``{params_m, search_gpu_hours, acc_1shot, acc_5shot}``.

    Accuracies are ``(mean, std)`` pairs; a value the paper leaves blank is ``None``. Returns ``None``
    when the paper has no such row (another dataset, cell count or method).
    """
    if paper_dataset is None:
        return None
    data = published()[table]
    if table == "table1":
        for row in data["rows"]:
            if row["method"] == method and row["cells"] == cells and row.get(paper_dataset):
                return dict(row[paper_dataset])
        return None
    if paper_dataset != data["dataset"]:
        return None
    for row in data["rows"]:
        if row["method"] == method and cells in row["acc_1shot"]:
            return {"params_m": None, "search_gpu_hours": None,
                    "acc_1shot": row["acc_1shot"][cells], "acc_5shot": row["acc_5shot"][cells]}
    return None


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _diff(measured: float | None, paper: float | None) -> float | None:
    return None if measured is None or paper is None else measured - paper


def architecture_source(run: RunResult, metanas_name: str | None = None) -> str:
    """Where a row's cell comes from, with the settings that made it."""
    cfg = run.search
    if run.method == "metantk-nas":
        return f"MetaNTK-NAS search ({cfg.get('kernel', '?').upper()} kernel, λτ={cfg.get('lam_tau')}, ρ={cfg.get('reg')})"
    if run.method == "te-nas":
        return "TE-NAS search (NTK + linear regions)"
    if run.method == "linear-regions":
        return "search by linear regions only"
    if run.method == "random":
        return "random cell"
    return f"published MetaNAS cell ({cfg.get('genotype') or metanas_name or 'fixed'})"


def training_recipe(run: RunResult) -> str:
    """The RFS recipe a row was trained with."""
    cfg = run.train
    decay = ",".join(str(e) for e in cfg.get("decay_epochs", []))
    return (f"RFS: {cfg.get('epochs')} epochs, lr {cfg.get('lr')} (x{cfg.get('decay_rate')} after {decay or '-'}), "
            f"batch {cfg.get('batch_size')}, drop-path {cfg.get('drop_path')}")


def build_rows(runs: Iterable[RunResult], table: str, paper_datasets: Mapping[str, str]) -> list[dict[str, Any]]:
    """Aggregate runs into table rows (see :data:`COLUMNS`), in paper order.

    Args:
        runs: one record per run folder.
        table: ``"table1"`` or ``"table2"``: which published table the rows are compared with.
        paper_datasets: dataset name -> paper column (``miniImageNet``/``tieredImageNet``).
    """
    groups: dict[tuple[str, str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    if not groups:
        raise ValueError(f"{table}: no runs given")
    rows = []
    order = {method: index for index, method in enumerate(METHODS)}
    for (method, dataset, cells), members in sorted(
        groups.items(), key=lambda item: (item[0][1], item[0][2], order.get(item[0][0], len(order)), item[0][0])
    ):
        members.sort(key=lambda run: run.seed)
        paper_dataset = paper_datasets.get(dataset)
        paper = published_value(table, method, paper_dataset, cells) or {}
        params_m = statistics.fmean(run.params for run in members) / 1e6
        hours = statistics.fmean(run.search_hours for run in members)
        devices = sorted({run.search_device for run in members})
        on_gpu = devices == ["cuda"]
        row: dict[str, Any] = {
            "method": method,
            "model": method_label(method),
            "dataset": dataset,
            "paper_dataset": paper_dataset,
            "cells": cells,
            "seeds": " ".join(str(run.seed) for run in members),
            "architecture": architecture_source(members[0]),
            "training": training_recipe(members[0]),
            "params_m": params_m,
            "params_m_paper": paper.get("params_m"),
            "params_m_diff": _diff(params_m, paper.get("params_m")),
            "search_hours": hours,
            "search_device": "+".join(devices),
            "search_gpu_hours_paper": paper.get("search_gpu_hours"),
            # GPU hours are only comparable with GPU hours.
            "search_gpu_hours_diff": _diff(hours, paper.get("search_gpu_hours")) if on_gpu else None,
        }
        for shot in SHOTS:
            mean, std = _mean_std([run.accuracy[shot] for run in members])
            paper_mean, paper_std = paper.get(f"acc_{shot}shot") or (None, None)
            row |= {
                f"acc_{shot}shot_mean": mean,
                f"acc_{shot}shot_std": std,
                f"acc_{shot}shot_paper_mean": paper_mean,
                f"acc_{shot}shot_paper_std": paper_std,
                f"acc_{shot}shot_diff": _diff(mean, paper_mean),
            }
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _pm(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _beside(measured: str, paper: str, diff: float | None, digits: int = 2) -> str:
    if paper == "–":
        return measured
    delta = f", Δ {diff:+.{digits}f}" if diff is not None else ""
    return f"{measured} (paper {paper}{delta})"


def to_markdown(rows: Sequence[Mapping[str, Any]], title: str, footer: str = "") -> str:
    """A readable table: every measured value followed by the paper's and the difference."""
    header = ["Model", "Dataset", "#Cells", "Seeds", "Arch.", "Train", "#Param. (M)", "Search cost (h)",
              "1-shot (%)", "5-shot (%)"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        search = f"{row['search_hours']:.3g} ({row['search_device']})"
        paper_search = row["search_gpu_hours_paper"]
        cells = [
            row["model"],
            row["dataset"] + (f" ({row['paper_dataset']})" if row["paper_dataset"] else ""),
            str(row["cells"]),
            row["seeds"],
            row["architecture"],
            row["training"],
            _beside(f"{row['params_m']:.2f}", _pm(row["params_m_paper"], None), row["params_m_diff"]),
            search + (f" (paper {paper_search:g} GPU h)" if paper_search is not None else ""),
        ]
        for shot in SHOTS:
            cells.append(_beside(
                _pm(row[f"acc_{shot}shot_mean"], row[f"acc_{shot}shot_std"]),
                _pm(row[f"acc_{shot}shot_paper_mean"], row[f"acc_{shot}shot_paper_std"]),
                row[f"acc_{shot}shot_diff"],
            ))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Accuracy: mean ± standard deviation over seeds of each seed's mean over its test tasks; "
              "Δ = measured − paper. Search cost: wall-clock hours on the search device (the paper's are "
              "V100 GPU hours)."]
    if footer:
        lines += ["", footer]
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[Mapping[str, Any]], csv_path: str | Path, title: str,
                provenance: Mapping[str, Any]) -> list[Path]:
    """Write ``X.csv``, ``X.md`` and ``X.json`` (rows + provenance) atomically; returns the paths."""
    from metantk_nas.io import atomic_write_text, write_csv, write_json

    csv_path = Path(csv_path)
    md_path, json_path = csv_path.with_suffix(".md"), csv_path.with_suffix(".json")
    footer = (f"Generated by metantk-nas {provenance.get('metantk_nas_version')} "
              f"(git {provenance.get('git_revision')}, sources sha256 {str(provenance.get('source_sha256'))[:12]}).")
    write_csv(csv_path, COLUMNS, [{column: _cell(row.get(column)) for column in COLUMNS} for row in rows])
    atomic_write_text(md_path, to_markdown(rows, title, footer))
    write_json(json_path, {"title": title, "columns": list(COLUMNS), "rows": list(rows), "provenance": provenance})
    return [csv_path, md_path, json_path]

"""Table 1 and Table 2 of the paper, rebuilt from run folders, each number beside the published one.

Table 1 lists, per dataset, every row of Paper Table 1 in the paper's order: the baselines re-trained by
``metantk-nas baseline`` (MAML, ANIL, MetaOptNet, RFS; their own protocol's accuracy, and the cells'
linear probe on their features in the ``probe`` columns), the rows that are not re-run (AutoMeta,
T-NAS++, MetaNAS: the published values, with the reason in ``note``), then the searched and retrained
cells. One row per (method, dataset, cells): the runs of all seeds are aggregated (mean and standard
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

from metantk_nas.report.results import SHOTS, BaselineResult, RunResult
from metantk_nas.search.methods import METHODS

#: Column order of table1.csv and table2.csv.
COLUMNS: tuple[str, ...] = (
    "method", "model", "dataset", "paper_dataset", "cells", "seeds", "architecture", "training",
    "params_m", "params_m_paper", "params_m_diff",
    "search_hours", "search_device", "search_gpu_hours_paper", "search_gpu_hours_diff",
    "acc_1shot_mean", "acc_1shot_std", "acc_1shot_paper_mean", "acc_1shot_paper_std", "acc_1shot_diff",
    "acc_5shot_mean", "acc_5shot_std", "acc_5shot_paper_mean", "acc_5shot_paper_std", "acc_5shot_diff",
    "protocol", "probe_1shot_mean", "probe_1shot_std", "probe_5shot_mean", "probe_5shot_std", "note",
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
    if run.method == "custom":
        return f"search by {' + '.join(cfg.get('proxies') or ['?'])} (rank sum)"
    if run.method == "zoo":
        return f"zoo cell {cfg.get('genotype')}"
    return f"published MetaNAS cell ({cfg.get('genotype') or metanas_name or 'fixed'})"


def training_recipe(run: RunResult) -> str:
    """The RFS recipe a row was trained with."""
    cfg = run.train
    decay = ",".join(str(e) for e in cfg.get("decay_epochs", []))
    return (f"RFS: {cfg.get('epochs')} epochs, lr {cfg.get('lr')} (x{cfg.get('decay_rate')} after {decay or '-'}), "
            f"batch {cfg.get('batch_size')}, drop-path {cfg.get('drop_path')}")


def build_rows(runs: Iterable[RunResult], table: str, paper_datasets: Mapping[str, str],
               baselines: Iterable[BaselineResult] = ()) -> list[dict[str, Any]]:
    """Aggregate runs into table rows (see :data:`COLUMNS`), in paper order.

    Args:
        runs: one record per run folder of the searched / retrained cells.
        table: ``"table1"`` or ``"table2"``: which published table the rows are compared with.
        paper_datasets: dataset name -> paper column (``miniImageNet``/``tieredImageNet``).
        baselines: one record per baseline run folder (Table 1 only).
    """
    groups: dict[tuple[str, str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    baseline_groups: dict[tuple[str, str], list[BaselineResult]] = {}
    for result in baselines:
        baseline_groups.setdefault((result.dataset, result.baseline), []).append(result)
    if not groups and not baseline_groups:
        raise ValueError(f"{table}: no runs given")
    order = {method: index for index, method in enumerate(METHODS)}
    cell_rows = {}
    for (method, dataset, cells), members in groups.items():
        members.sort(key=lambda run: run.seed)
        cell_rows[(method, dataset, cells)] = _cell_row(table, method, dataset, cells, members,
                                                        paper_datasets.get(dataset))
    if table != "table1":
        return [cell_rows[key] for key in sorted(cell_rows, key=lambda k: (k[1], k[2], order.get(k[0], len(order)), k[0]))]
    rows = []
    for dataset in sorted({key[1] for key in cell_rows} | {key[0] for key in baseline_groups}):
        paper_dataset = paper_datasets.get(dataset)
        for entry in published()["table1"]["rows"]:
            if entry.get("baseline"):
                members = sorted(baseline_groups.get((dataset, entry["baseline"]), []), key=lambda r: r.seed)
                if members:
                    rows.append(_baseline_row(entry, dataset, paper_dataset, members))
            elif entry.get("not_rerun"):
                rows.append(_published_row(entry, dataset, paper_dataset))
        rows += [cell_rows[key] for key in sorted((k for k in cell_rows if k[1] == dataset),
                                                  key=lambda k: (k[2], order.get(k[0], len(order)), k[0]))]
    return rows


def _accuracy_columns(shots_values: Mapping[int, Sequence[float]], paper: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for shot in SHOTS:
        mean, std = _mean_std(shots_values[shot]) if shots_values.get(shot) else (None, None)
        paper_mean, paper_std = paper.get(f"acc_{shot}shot") or (None, None)
        row |= {
            f"acc_{shot}shot_mean": mean,
            f"acc_{shot}shot_std": std,
            f"acc_{shot}shot_paper_mean": paper_mean,
            f"acc_{shot}shot_paper_std": paper_std,
            f"acc_{shot}shot_diff": _diff(mean, paper_mean),
        }
    return row


def _probe_columns(shots_values: Mapping[int, Sequence[float]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for shot in SHOTS:
        mean, std = _mean_std(shots_values[shot])
        row |= {f"probe_{shot}shot_mean": mean, f"probe_{shot}shot_std": std}
    return row


def _cell_row(table: str, method: str, dataset: str, cells: int, members: list[RunResult],
              paper_dataset: str | None) -> dict[str, Any]:
    paper = published_value(table, method, paper_dataset, cells) or {}
    params_m = statistics.fmean(run.params for run in members) / 1e6
    hours = statistics.fmean(run.search_hours for run in members)
    devices = sorted({run.search_device for run in members})
    accuracy = {shot: [run.accuracy[shot] for run in members] for shot in SHOTS}
    return {
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
        "search_gpu_hours_diff": _diff(hours, paper.get("search_gpu_hours")) if devices == ["cuda"] else None,
        **_accuracy_columns(accuracy, paper),
        # the cells' own protocol is the linear probe
        "protocol": "probe", **_probe_columns(accuracy), "note": None,
    }


def _baseline_row(entry: Mapping[str, Any], dataset: str, paper_dataset: str | None,
                  members: list[BaselineResult]) -> dict[str, Any]:
    from metantk_nas.space.backbones import BackboneSpec

    paper = dict(entry.get(paper_dataset) or {}) if paper_dataset else {}
    params_m = statistics.fmean(run.params for run in members) / 1e6
    first = members[0]
    return {
        "method": first.baseline,
        "model": entry["model"],
        "dataset": dataset,
        "paper_dataset": paper_dataset,
        "cells": None,
        "seeds": " ".join(str(run.seed) for run in members),
        "architecture": BackboneSpec.from_dict(first.backbone).label(),
        "training": baseline_recipe(first),
        "params_m": params_m,
        "params_m_paper": paper.get("params_m"),
        "params_m_diff": _diff(params_m, paper.get("params_m")),
        "search_hours": None,
        "search_device": None,
        "search_gpu_hours_paper": None,
        "search_gpu_hours_diff": None,
        **_accuracy_columns({shot: [run.accuracy[shot] for run in members] for shot in SHOTS}, paper),
        "protocol": first.protocol,
        **_probe_columns({shot: [run.probe[shot] for run in members] for shot in SHOTS}),
        "note": f"trained {statistics.fmean(run.train_hours for run in members):.3g} h on {first.train_device}",
    }


def _published_row(entry: Mapping[str, Any], dataset: str, paper_dataset: str | None) -> dict[str, Any]:
    paper = dict(entry.get(paper_dataset) or {}) if paper_dataset else {}
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row |= {
        "method": None, "model": entry["model"], "dataset": dataset, "paper_dataset": paper_dataset,
        "cells": entry.get("cells"), "seeds": "", "architecture": entry["architecture"], "training": entry["training"],
        "params_m_paper": paper.get("params_m"), "search_gpu_hours_paper": paper.get("search_gpu_hours"),
        "note": f"not re-run: {entry['not_rerun']}",
    }
    for shot in SHOTS:
        row[f"acc_{shot}shot_paper_mean"], row[f"acc_{shot}shot_paper_std"] = paper.get(f"acc_{shot}shot") or (None, None)
    return row


def baseline_recipe(result: BaselineResult) -> str:
    """How a baseline was trained, from its settings."""
    cfg = result.train
    if result.baseline in ("maml", "anil"):
        order = "first-order" if cfg.get("first_order") else "second-order"
        return (f"{result.baseline.upper()}: {cfg.get('meta_steps')} meta-updates × {cfg.get('meta_batch_1shot')}/"
                f"{cfg.get('meta_batch_5shot')} tasks (1/5-shot), {cfg.get('inner_steps')} inner steps at lr "
                f"{cfg.get('inner_lr')} ({order}), Adam {cfg.get('meta_lr')}; test: {cfg.get('inner_steps_test')} steps")
    if result.baseline == "metaoptnet":
        return (f"MetaOptNet-SVM: {cfg.get('epochs')} epochs × {cfg.get('updates_per_epoch')} updates × "
                f"{cfg.get('meta_batch')} episodes ({cfg.get('train_shot')}-shot), SGD {cfg.get('lr')}, C {cfg.get('C')}")
    decay = ",".join(str(e) for e in cfg.get("decay_epochs", []))
    return (f"RFS: {cfg.get('epochs')} epochs, lr {cfg.get('lr')} (x{cfg.get('decay_rate')} after {decay or '-'}), "
            f"batch {cfg.get('batch_size')}")


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
              "1-shot (%)", "5-shot (%)", "Probe 1-shot (%)", "Probe 5-shot (%)", "Note"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        search = f"{row['search_hours']:.3g} ({row['search_device']})" if row["search_hours"] is not None else "–"
        paper_search = row["search_gpu_hours_paper"]
        params = f"{row['params_m']:.2f}" if row["params_m"] is not None else "–"
        cells = [
            row["model"],
            row["dataset"] + (f" ({row['paper_dataset']})" if row["paper_dataset"] else ""),
            str(row["cells"]) if row["cells"] is not None else "–",
            row["seeds"] or "–",
            row["architecture"],
            row["training"],
            _beside(params, _pm(row["params_m_paper"], None), row["params_m_diff"]),
            search + (f" (paper {paper_search:g} GPU h)" if paper_search is not None else ""),
        ]
        for shot in SHOTS:
            cells.append(_beside(
                _pm(row[f"acc_{shot}shot_mean"], row[f"acc_{shot}shot_std"]),
                _pm(row[f"acc_{shot}shot_paper_mean"], row[f"acc_{shot}shot_paper_std"]),
                row[f"acc_{shot}shot_diff"],
            ))
        if any(row.get(f"probe_{shot}shot_mean") is not None for shot in SHOTS):
            cells += [_pm(row[f"probe_{shot}shot_mean"], row[f"probe_{shot}shot_std"]) for shot in SHOTS]
        else:
            cells += ["–"] * len(SHOTS)
        cells.append(row.get("note") or "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Accuracy: mean ± standard deviation over seeds of each seed's mean over its test tasks (each "
              "method's own protocol; every method on the same tasks); Δ = measured − paper. Probe: the cells' "
              "linear probe on each network's features. Search cost: wall-clock hours on the search device (the "
              "paper's are V100 GPU hours)."]
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

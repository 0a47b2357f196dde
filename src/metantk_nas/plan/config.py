"""The workflow's configuration: layering, command-line coercion, schema defaults, cross-key checks.

Layering: ``config/config.yaml`` (the embedded default) is read only when no ``--configfile`` is given,
so its values never leak into another config; keys a config leaves out take the schema defaults,
which are the paper's / the official code's values. Shared by the Snakefile and ``metantk-nas
settings``; imports neither torch nor numpy.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metantk_nas.plan.jobs import (
    GLYPH_KEYS,
    SHOTS,
    STORE,
    baseline_datasets,
    baseline_runs,
    datasets_needed,
    job_settings,
    runs,
    settings,
)

#: The embedded default, relative to the workflow folder: read only when no config file is given.
DEFAULT_CONFIG = Path("config/config.yaml")
SCHEMA = Path("workflow/schemas/config.schema.yaml")
#: ``metantk-nas prepare`` default for glyphs (used to check that tasks fit into a class).
GLYPH_IMAGES_PER_CLASS = 60


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key and what is allowed."""


# ---------------------------------------------------------------- loading


def config_files(configfiles: Sequence[str | os.PathLike], workflow_dir: str | os.PathLike) -> list[Path]:
    """The files that make the config: those given, or else the embedded default alone."""
    if configfiles:
        return [Path(path) for path in configfiles]
    return [Path(workflow_dir) / DEFAULT_CONFIG]


def load(
    configfiles: Sequence[str | os.PathLike] = (),
    overrides: Mapping[str, Any] | None = None,
    *,
    workflow_dir: str | os.PathLike = ".",
    workdir: str | os.PathLike = ".",
    require_data: bool = True,
) -> dict[str, Any]:
    """The validated config as the Snakefile sees it: files merged in order, then ``overrides``.

    ``overrides`` is what ``snakemake --config`` gives (values may be strings; see :func:`coerce`).
    """
    import yaml

    config: dict[str, Any] = {}
    for path in config_files(configfiles, workflow_dir):
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        merge(config, data)
    merge(config, dict(overrides or {}))
    prepare(config, workflow_dir)
    check(config, workdir=workdir, require_data=require_data)
    return config


def merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Snakemake's merge: mappings merge key by key, anything else (lists too) replaces."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def prepare(config: dict[str, Any], workflow_dir: str | os.PathLike) -> None:
    """Coerce command-line strings, then validate against the schema, filling its defaults in place."""
    from snakemake.utils import validate

    schema_path = Path(workflow_dir) / SCHEMA
    coerce(config, _schema(schema_path))
    validate(config, str(schema_path.resolve()))


def _schema(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def coerce(config: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Turn strings into the numbers, booleans or nulls the schema asks for, in place.

    ``snakemake --config evaluate='{tasks: 100}'`` parses nested values as strings; without this,
    ``'100'`` would fail validation although the user wrote a number.
    """
    _coerce_node(config, schema, schema)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with its ``$ref`` merged in (local ``properties`` only add defaults to the referenced ones)."""
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        local = {k: v for k, v in node.items() if k != "$ref"}
        properties = {**target.get("properties", {})}
        for key, extra in local.pop("properties", {}).items():
            properties[key] = {**properties.get(key, {}), **extra}
        node = {**target, **local, "properties": properties}
    return node


def _coerce_node(value: Any, node: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    node = _resolve(node, root)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key in list(value):
            child = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if child is not None:
                value[key] = _coerce_node(value[key], child, root)
        return value
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        return [_coerce_node(item, node["items"], root) for item in value]
    if isinstance(value, str):
        return _parse_scalar(value, node)
    return value


def _parse_scalar(text: str, node: Mapping[str, Any]) -> Any:
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    enum = node.get("enum", [])
    if "string" in types or any(isinstance(option, str) for option in enum):
        return text
    lowered = text.strip().lower()
    if "null" in types and lowered in {"null", "none", "~", ""}:
        return None
    if "boolean" in types and lowered in {"true", "false"}:
        return lowered == "true"
    wants_int = "integer" in types or (enum and all(isinstance(o, int) for o in enum))
    if wants_int:
        try:
            return int(text)
        except ValueError:
            return text
    if "number" in types:
        try:
            return float(lowered.lstrip("+").replace(".inf", "inf"))
        except ValueError:
            return text
    return text


# ---------------------------------------------------------------- cross-key checks


def check(config: Mapping[str, Any], *, workdir: str | os.PathLike = ".", require_data: bool = True) -> None:
    """Checks the schema cannot express; every message names the key and what is allowed.

    ``require_data``: the raw dataset of every dataset whose store the DAG still has to prepare must
    exist (``metantk-nas settings`` reports instead of refusing).
    """
    problems = problems_of(config, workdir=workdir, require_data=require_data)
    if problems:
        raise ConfigError("; ".join(problems) if len(problems) == 1 else
                          "config errors:\n  " + "\n  ".join(problems))


def problems_of(config: Mapping[str, Any], *, workdir: str | os.PathLike = ".",
                require_data: bool = True) -> list[str]:
    """Every cross-key problem of ``config`` (empty when it can run)."""
    problems: list[str] = []
    names = sorted(config["datasets"])
    seen = set()
    for index, entry in enumerate(config["experiments"]):
        key = f"experiments[{index}]"
        if entry["dataset"] not in config["datasets"]:
            problems.append(f"config key {key}.dataset: {entry['dataset']!r} is not a key of 'datasets'; "
                            f"allowed values: {names}")
            continue
        pair = (entry["dataset"], entry["cells"])
        if pair in seen:
            problems.append(f"config key {key}: dataset {pair[0]!r} with cells {pair[1]} is listed twice; "
                            "merge the two entries")
        seen.add(pair)
        problems += _experiment_problems(config, entry, key)
    problems += _job_problems(config)
    used = sorted({entry["dataset"] for entry in config["experiments"]})
    if config["ablation_dataset"] not in used:
        problems.append(f"config key ablation_dataset: {config['ablation_dataset']!r} has no experiments; "
                        f"allowed values: {used}")
    theory = config["theory"].get("dataset")
    if theory is not None and theory not in config["datasets"]:
        problems.append(f"config key theory.dataset: {theory!r} is not a key of 'datasets'; "
                        f"allowed values: {names} or null")
    problems += _baseline_problems(config)
    problems += _study_problems(config)
    problems += _genotype_problems(config)
    for name in sorted(config["datasets"]):
        problems += _dataset_problems(config, name, workdir, require_data)
    return problems


def _experiment_problems(config: Mapping[str, Any], entry: Mapping[str, Any], key: str) -> list[str]:
    images = _images_per_class(config["datasets"][entry["dataset"]])
    if images is None:
        return []
    problems = []
    evaluate = settings(config, "evaluate", entry["dataset"], entry["cells"])
    if max(SHOTS) + evaluate["queries"] > images:
        problems.append(f"config key evaluate.queries ({key}): {max(SHOTS)} shots + {evaluate['queries']} "
                        f"queries need that many images per class, dataset {entry['dataset']!r} renders "
                        f"{images}; lower the queries or raise datasets.{entry['dataset']}.images_per_class")
    search = settings(config, "search", entry["dataset"], entry["cells"])
    if search["shots"] + search["queries"] > images:
        problems.append(f"config key search.shots/queries ({key}): {search['shots']} + {search['queries']} "
                        f"images per class, dataset {entry['dataset']!r} renders {images}")
    return problems


def _baseline_problems(config: Mapping[str, Any]) -> list[str]:
    """Baseline datasets exist, and their training tasks fit into a glyph class."""
    from metantk_nas.baselines.algorithms import get_algorithm

    names = sorted(config["datasets"])
    problems = [f"config key baselines.datasets: {name!r} is not a key of 'datasets'; allowed values: {names}"
                for name in baseline_datasets(config) if name not in config["datasets"]]
    if problems:
        return problems
    for run in baseline_runs(config):
        images = _images_per_class(config["datasets"][run["dataset"]])
        settings_ = job_settings(config, "baseline_train", {**run, "regime": "all"}) if images else {}
        algorithm = get_algorithm(run["baseline"])
        if not images or algorithm.training != "episodic":
            continue
        shots = max(SHOTS) if algorithm.per_shot else settings_["train_shot"]
        if shots + settings_["queries"] > images:
            key = f"baselines.{run['baseline']}"
            message = (f"config key {key}.queries: {shots} shots + {settings_['queries']} queries per class of a "
                       f"training task, dataset {run['dataset']!r} renders {images}; lower them or raise "
                       f"datasets.{run['dataset']}.images_per_class")
            if message not in problems:
                problems.append(message)
    return problems


def _job_problems(config: Mapping[str, Any]) -> list[str]:
    """Every job's settings, checked by its stage's settings class (ranges, e.g. decay epochs < epochs)."""
    problems: list[str] = []
    known = {entry["dataset"] for entry in config["experiments"]} <= set(config["datasets"])
    candidates = [("theory", {})] if config["theory"]["enabled"] else []
    if known:
        candidates += [(rule, {**run, "shot": shot}) for run in runs(config) for rule in ("search", "train", "evaluate")
                       for shot in (SHOTS if rule == "evaluate" else (None,))]
    if set(baseline_datasets(config)) <= set(config["datasets"]):
        candidates += [(rule, {**run, "regime": "all", "shot": 1}) for run in baseline_runs(config)
                       for rule in ("baseline_train", "baseline_evaluate")]
    for rule, wildcards in candidates:
        try:
            job_settings(config, rule, {k: v for k, v in wildcards.items() if v is not None})
        except ValueError as error:
            message = f"config: {error}"
            if message not in problems:
                problems.append(message)
    return problems


def _study_problems(config: Mapping[str, Any]) -> list[str]:
    """The study block is valid and names a (dataset, cells) experiment; when enabled, its runs' settings check."""
    from metantk_nas.plan.jobs import study_cells, study_config, study_dataset, study_runs

    try:
        study_config(config)
    except ValueError as error:
        return [f"config: {error}"]
    dataset = study_dataset(config)
    if dataset not in config["datasets"]:
        return [f"config key study.dataset: {dataset!r} is not a key of 'datasets'; allowed values: "
                f"{sorted(config['datasets'])} or null"]
    try:
        cells = study_cells(config)
    except ValueError as error:
        return [str(error)]
    if not any(e["dataset"] == dataset and e["cells"] == cells for e in config["experiments"]):
        return [f"config key study.cells: no experiment has dataset {dataset!r} and cells {cells}; the study's runs "
                "use that experiment's search, train and evaluate settings"]
    problems: list[str] = []
    if config["study"].get("enabled"):
        for run in study_runs(config):
            for rule, shot in (("search", None), ("study_score", None), ("train", None), ("evaluate", 1)):
                try:
                    job_settings(config, rule, {**run, **({"shot": shot} if shot else {})})
                except ValueError as error:
                    if f"config: {error}" not in problems:
                        problems.append(f"config: {error}")
    return problems


def _genotype_problems(config: Mapping[str, Any]) -> list[str]:
    if not any("metanas" in entry["methods"] for entry in config["experiments"]):
        return []
    from metantk_nas.space.zoo import load_genotype

    try:
        load_genotype(config["metanas_genotype"])
    except (ValueError, OSError) as error:
        return [f"config key metanas_genotype: {error}"]
    return []


def _dataset_problems(config: Mapping[str, Any], name: str, workdir: str | os.PathLike,
                      require_data: bool) -> list[str]:
    entry = config["datasets"][name]
    key = f"datasets.{name}"
    if entry["format"] == "glyphs":
        return [f"config key {key}.root: format glyphs is rendered, not read; remove the root"] if entry.get("root") \
            else []
    problems = [f"config key {key}.{k}: only format glyphs uses it, this dataset is {entry['format']}"
                for k in GLYPH_KEYS if k in entry]
    needed = name in datasets_needed(config)
    store = Path(workdir) / STORE.format(dataset=name) / "dataset.json"
    root = Path(workdir) / entry["root"]
    if require_data and needed and not store.is_file() and not root.is_dir():
        problems.append(f"config key {key}.root: {entry['root']!r} is not a folder (from {Path(workdir).resolve()}); "
                        f"expected the folder holding the {entry['format']} files")
    return problems


def _images_per_class(entry: Mapping[str, Any]) -> int | None:
    if entry["format"] != "glyphs":
        return None
    return int(entry.get("images_per_class", GLYPH_IMAGES_PER_CLASS))

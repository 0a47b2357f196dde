"""The workflow's runs and jobs, and the command line and settings of each job.

One definition for the Snakefile (``workflow/rules/common.smk``) and ``metantk-nas settings``, so the
settings a user inspects are the settings the jobs get. Imports neither torch nor numpy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metantk_nas.evaluate.config import SHOTS
from metantk_nas.search.methods import TABLES

#: Which paper column a prepared dataset is compared with (by source format).
PAPER_DATASET = {
    "rfs-mini": "miniImageNet",
    "ravi-csv": "miniImageNet",
    "rfs-tiered": "tieredImageNet",
    "ren-tiered": "tieredImageNet",
}
#: Keys of a dataset entry that only the rendered glyphs use.
GLYPH_KEYS = ("image_size", "images_per_class", "seed")

STORE = "resources/{dataset}"
RUN = "results/{dataset}/{cells}cell/{method}/seed{seed}"
THEORY = "results/theory"
FIGURES = "results/figures"
CELLS = f"{FIGURES}/cells/{{dataset}}-{{cells}}cell-{{method}}-seed{{seed}}"
#: A Table 1 baseline's results: ``train-{regime}/`` (model per shot setting or ``all``), ``evaluate/`` (its own
#: protocol) and ``probe/`` (the linear probe of the searched cells, on its features).
BASELINE_RUN = "results/{dataset}/baselines/{baseline}/seed{seed}"
#: The proxy study: every proxy of a run's cell (inside the run folder), and the summary over all its runs.
STUDY_SCORES = f"{RUN}/study/scores.csv"
STUDY_SUMMARY = "results/proxies.csv"


# ---------------------------------------------------------------- runs and settings


def experiment(config: Mapping[str, Any], dataset: str, cells: int | str) -> Mapping[str, Any]:
    """The experiment entry of (dataset, cells)."""
    for entry in config["experiments"]:
        if entry["dataset"] == dataset and entry["cells"] == int(cells):
            return entry
    raise ValueError(f"no experiment with dataset {dataset!r} and cells {cells}")


def settings(config: Mapping[str, Any], section: str, dataset: str, cells: int | str) -> dict[str, Any]:
    """Section defaults overridden by the experiment's own block of the same name."""
    return {**config[section], **experiment(config, dataset, cells).get(section, {})}


def runs(config: Mapping[str, Any], methods: Iterable[str] | None = None,
         datasets: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Wildcards of every configured run, optionally restricted to methods/datasets."""
    methods = None if methods is None else set(methods)
    datasets = None if datasets is None else set(datasets)
    return [
        {"dataset": entry["dataset"], "cells": entry["cells"], "method": method, "seed": seed}
        for entry in config["experiments"]
        if datasets is None or entry["dataset"] in datasets
        for method in entry["methods"]
        if methods is None or method in methods
        for seed in entry["seeds"]
    ]


def table_runs(config: Mapping[str, Any], table: str) -> list[dict[str, Any]]:
    """Runs that feed Table 1 (every dataset) or Table 2 (the ablation dataset)."""
    from metantk_nas.search.methods import table_methods

    datasets = None if table == "table1" else [config["ablation_dataset"]]
    return runs(config, methods=table_methods(table), datasets=datasets)


def baseline_datasets(config: Mapping[str, Any]) -> list[str]:
    """Datasets the baselines run on: ``baselines.datasets``, or else every dataset with experiments."""
    chosen = config["baselines"].get("datasets")
    if chosen is None:
        chosen = dict.fromkeys(entry["dataset"] for entry in config["experiments"])
    return list(chosen)


def baseline_runs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Wildcards of every configured baseline run (dataset, baseline, seed), in Table 1 order."""
    return [{"dataset": dataset, "baseline": name, "seed": seed}
            for dataset in baseline_datasets(config)
            for name in config["baselines"]["rows"]
            for seed in config["baselines"]["seeds"]]


def baseline_evaluate_settings(config: Mapping[str, Any], dataset: str) -> dict[str, Any]:
    """The ``evaluate`` settings of a dataset's first experiment: baselines and cells share their tasks."""
    first = next((entry for entry in config["experiments"] if entry["dataset"] == dataset), None)
    return settings(config, "evaluate", dataset, first["cells"]) if first else dict(config["evaluate"])


def theory_dataset(config: Mapping[str, Any]) -> str:
    """The dataset the theory checks read."""
    return config["theory"].get("dataset") or config["ablation_dataset"]


def datasets_needed(config: Mapping[str, Any]) -> list[str]:
    """Datasets some job reads (experiments, and the theory checks when enabled)."""
    names = {entry["dataset"] for entry in config["experiments"]} | set(baseline_datasets(config))
    if config["theory"]["enabled"]:
        names.add(theory_dataset(config))
    return sorted(names)


def paper_datasets(config: Mapping[str, Any]) -> list[str]:
    """``name=paper column`` arguments for the report (only datasets the paper measured)."""
    return [f"{name}={PAPER_DATASET[entry['format']]}" for name, entry in sorted(config["datasets"].items())
            if entry["format"] in PAPER_DATASET]


# ---------------------------------------------------------------- the proxy study


def study_config(config: Mapping[str, Any]) -> Any:
    """The ``study`` block as a checked ``StudyConfig``."""
    from metantk_nas.study.config import StudyConfig

    return StudyConfig.from_dict(config["study"], source="study")


def study_dataset(config: Mapping[str, Any]) -> str:
    """The dataset of the proxy study: ``study.dataset``, or else the ablation dataset."""
    return config["study"].get("dataset") or config["ablation_dataset"]


def study_cells(config: Mapping[str, Any]) -> int:
    """The cells of the proxy study: ``study.cells``, or else those of the study dataset's first experiment."""
    dataset = study_dataset(config)
    chosen = config["study"].get("cells")
    if chosen is not None:
        return int(chosen)
    for entry in config["experiments"]:
        if entry["dataset"] == dataset:
            return int(entry["cells"])
    raise ValueError(f"config key study.dataset: {dataset!r} has no experiments")


def zoo_cell(index: int) -> str:
    """The zoo's cell number ``index`` (the genotype of method ``zoo`` with seed ``index``)."""
    from metantk_nas.space.zoo import list_zoo

    names = list_zoo()
    if not 0 <= index < len(names):
        raise ValueError(f"method zoo: seed {index} is not a zoo cell index (0..{len(names) - 1})")
    return names[index]


def study_runs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs whose cells the proxy study ranks: ``random_cells`` random cells, the zoo (``study.zoo``) and
    every run of the study's (dataset, cells) experiment; each once, in that order. With the zoo, an experiment's
    given-cell run (``metanas``) whose cell is a zoo cell is left out: its architecture is already there."""
    from metantk_nas.search.methods import get_method
    from metantk_nas.space.zoo import list_zoo

    study = study_config(config)
    dataset, cells = study_dataset(config), study_cells(config)
    base = {"dataset": dataset, "cells": cells}
    zoo = list_zoo() if study.zoo else []
    found = [{**base, "method": "random", "seed": seed} for seed in range(study.random_cells)]
    found += [{**base, "method": "zoo", "seed": index} for index in range(len(zoo))]
    found += [run for run in runs(config, datasets=[dataset]) if run["cells"] == cells
              and not (get_method(run["method"]).source == "genotype" and config.get(f"{run['method']}_genotype") in zoo)]
    unique = []
    for run in found:
        if run not in unique:
            unique.append(run)
    return unique


def study_name(run: Mapping[str, Any]) -> str:
    """The name of a study run's architecture in the study's tables: ``method/seedN``."""
    return f"{run['method']}/seed{run['seed']}"


def study_score_argv(config: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas study score`` arguments of one run's cell."""
    study = study_config(config)
    return ["study", "score", "--config", settings_file("study_score", run), "--dataset", STORE.format(**run),
            "--genotype", f"{RUN}/search/genotype.json".format(**run), "--name", study_name(run),
            "--out", STUDY_SCORES.format(**run), "--proxies", *study.proxies, "--seeds", str(study.seeds)]


def study_summary_argv(config: Mapping[str, Any]) -> list[str]:
    """``metantk-nas study summarise`` arguments: every study run's scores and evaluation."""
    study = study_config(config)
    selected = study_runs(config)
    return ["study", "summarise", "--scores", *(STUDY_SCORES.format(**run) for run in selected),
            "--evaluated", *(f"{study_name(run)}={RUN.format(**run)}/evaluate" for run in selected),
            "--out", STUDY_SUMMARY, "--figures", FIGURES, "--resamples", str(study.resamples),
            "--seed", str(study.seed)]


# ---------------------------------------------------------------- settings of each job

#: Where each job's resolved settings are written (by rule ``settings``); the job reads them with
#: ``--config FILE``, and as a tracked input a changed setting reruns exactly the jobs it concerns.
SETTINGS = "results/.settings"
RUN_PATH = "{dataset}/{cells}cell/{method}/seed{seed}"
SETTINGS_FILES = {
    "search": f"{SETTINGS}/search/{RUN_PATH}.json",
    "train": f"{SETTINGS}/train/{RUN_PATH}.json",
    "evaluate": f"{SETTINGS}/evaluate/{RUN_PATH}/{{shot}}shot.json",
    "theory": f"{SETTINGS}/theory/theory.json",
    "baseline_train": f"{SETTINGS}/baseline_train/{{dataset}}/{{baseline}}/seed{{seed}}/{{regime}}.json",
    "baseline_evaluate": f"{SETTINGS}/baseline_evaluate/{{dataset}}/{{baseline}}/seed{{seed}}/{{shot}}shot.json",
    "baseline_probe": f"{SETTINGS}/baseline_probe/{{dataset}}/{{baseline}}/seed{{seed}}/{{shot}}shot.json",
    "study_score": f"{SETTINGS}/study_score/{RUN_PATH}.json",
}
_RUN_PATH = re.compile(r"(?P<dataset>[^/]+)/(?P<cells>\d+)cell/(?P<method>[^/]+)/seed(?P<seed>\d+)(?:/(?P<shot>\d+)shot)?")
_BASELINE_PATH = re.compile(r"(?P<dataset>[^/]+)/(?P<baseline>[^/]+)/seed(?P<seed>\d+)/(?P<leaf>all|\d+shot)")


def job_settings(config: Mapping[str, Any], rule: str, wildcards: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of one job, resolved and checked by the stage's own settings class."""
    from metantk_nas.evaluate.config import EvalConfig
    from metantk_nas.search.config import SearchConfig
    from metantk_nas.search.methods import CUSTOM, ZOO, get_method
    from metantk_nas.theory.config import TheoryConfig
    from metantk_nas.train.config import TrainConfig

    if rule == "theory":
        return TheoryConfig.from_dict(config["theory"].get("options", {}), source="theory.options").to_dict()
    if rule.startswith("baseline_"):
        return _baseline_settings(config, rule, wildcards)
    dataset, cells, method, seed = (wildcards[key] for key in ("dataset", "cells", "method", "seed"))
    identity = {"cells": int(cells), "seed": int(seed)}
    where = f"{rule} settings of {RUN_PATH.format(**wildcards)}"
    if rule == "study_score":  # one measurement at the experiment's search settings, the same draws for every run
        values = {**settings(config, "search", dataset, cells), "cells": int(cells), "channels": config["channels"],
                  "seed": study_config(config).seed}
        values.pop("proxies", None)
        return SearchConfig.from_dict(values, source=where).to_dict()
    if rule == "search":
        values = {"method": method, **identity, "channels": config["channels"]}
        source = get_method(method).source
        if method == ZOO:
            values["genotype"] = zoo_cell(int(seed))
        elif source == "genotype":
            values["genotype"] = config[f"{method}_genotype"]
        elif source == "search":
            values.update(settings(config, "search", dataset, cells))
            if method != CUSTOM:  # the preset methods carry their own proxies
                values.pop("proxies", None)
        return SearchConfig.from_dict(values, source=where).to_dict()
    if rule == "train":
        values = {**identity, "channels": config["channels"], **settings(config, "train", dataset, cells)}
        return TrainConfig.from_dict(values, source=where).to_dict()
    if rule == "evaluate":
        values = {"shots": [int(wildcards["shot"])], "seed": int(seed), **settings(config, "evaluate", dataset, cells)}
        return EvalConfig.from_dict(values, source=where).to_dict()
    raise ValueError(f"rule {rule!r} has no settings file")


def _baseline_settings(config: Mapping[str, Any], rule: str, wildcards: Mapping[str, Any]) -> dict[str, Any]:
    """A baseline job's settings: its algorithm's section (training), and the shared ``evaluate`` settings."""
    from metantk_nas.baselines.algorithms import get_algorithm
    from metantk_nas.baselines.config import CONFIGS
    from metantk_nas.evaluate.config import EvalConfig

    name, dataset, seed = wildcards["baseline"], wildcards["dataset"], int(wildcards["seed"])
    algorithm = get_algorithm(name)
    where = f"{rule} settings of {dataset}/{name}/seed{seed}"
    cls = CONFIGS[name]
    own = config["baselines"].get("per_dataset", {}).get(dataset, {}).get(name, {})
    algo = cls.from_dict({**config["baselines"].get(name, {}), **own, "seed": seed},
                         source=f"baselines.{name} ({where})")
    if rule == "baseline_train":
        return algo.to_dict()
    values = {"shots": [int(wildcards["shot"])], "seed": seed, **baseline_evaluate_settings(config, dataset)}
    evaluate = EvalConfig.from_dict(values, source=where).to_dict()
    if rule == "baseline_probe" or algorithm.protocol == "probe":
        return evaluate
    return {"evaluate": evaluate, cls.section: algo.to_dict()}


def settings_file(rule: str, wildcards: Mapping[str, Any]) -> str:
    """The settings file of one job."""
    return SETTINGS_FILES[rule].format(**wildcards)


def settings_of_file(config: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The settings that belong in ``path`` (a settings file of :data:`SETTINGS_FILES`)."""
    rule, _, rest = path.removeprefix(SETTINGS + "/").partition("/")
    if rule == "theory":
        return job_settings(config, rule, {})
    match = (_BASELINE_PATH if rule.startswith("baseline_") else _RUN_PATH).fullmatch(rest.removesuffix(".json"))
    if rule not in SETTINGS_FILES or match is None:
        raise ValueError(f"{path}: not a settings file of the workflow")
    wildcards = {k: v for k, v in match.groupdict().items() if v is not None}
    if "leaf" in wildcards:  # a baseline's model (train) or shot setting (evaluate, probe)
        leaf = wildcards.pop("leaf")
        wildcards.update({"regime": leaf} if rule == "baseline_train" else {"shot": leaf.removesuffix("shot")})
    return job_settings(config, rule, wildcards)


# ---------------------------------------------------------------- command lines


def _options(options: Mapping[str, Any]) -> list[str]:
    """``{"image_size": 32}`` -> ``["--image-size", "32"]``."""
    return [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def prepare_argv(config: Mapping[str, Any], dataset: str) -> list[str]:
    """``metantk-nas prepare`` arguments of one dataset (``--force``: the store is the workflow's own)."""
    entry = config["datasets"][dataset]
    argv = ["prepare", "--format", entry["format"], "--out", STORE.format(dataset=dataset), "--force"]
    if entry.get("root"):
        argv += ["--root", entry["root"]]
    return argv + _options({key: entry[key] for key in GLYPH_KEYS if key in entry})


def search_argv(run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas search`` arguments of one run."""
    return ["search", "--config", settings_file("search", run), "--dataset", STORE.format(**run),
            "--out", f"{RUN}/search".format(**run)]


def train_argv(run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas train`` arguments of one run."""
    return ["train", "--config", settings_file("train", run), "--genotype", f"{RUN}/search/genotype.json".format(**run),
            "--dataset", STORE.format(**run), "--out", f"{RUN}/train".format(**run)]


def evaluate_argv(run: Mapping[str, Any], shot: int | str) -> list[str]:
    """``metantk-nas evaluate`` arguments of one run and shot count."""
    return ["evaluate", "--config", settings_file("evaluate", {**run, "shot": shot}),
            "--model", f"{RUN}/train/model.pt".format(**run), "--dataset", STORE.format(**run),
            "--out", f"{RUN}/evaluate".format(**run)]


def draw_argv(run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas arch draw`` arguments of one run's cells."""
    stem = Path(CELLS.format(**run))
    return ["arch", "draw", f"{RUN}/search/genotype.json".format(**run), "--out", str(stem.parent),
            "--stem", stem.name]


def theory_argv(config: Mapping[str, Any]) -> list[str]:
    """``metantk-nas theory`` arguments."""
    return ["theory", "--config", settings_file("theory", {}), "--dataset",
            STORE.format(dataset=theory_dataset(config)), "--out", THEORY]


def baseline_train_argv(run: Mapping[str, Any], regime: str) -> list[str]:
    """``metantk-nas baseline train`` arguments of one baseline model."""
    argv = ["baseline", "train", run["baseline"], "--config", settings_file("baseline_train", {**run, "regime": regime}),
            "--dataset", STORE.format(**run), "--out", f"{BASELINE_RUN}/train-{regime}".format(**run)]
    return argv + (["--shot", regime.removesuffix("shot")] if regime != "all" else [])


def baseline_model(run: Mapping[str, Any], shot: int | str) -> str:
    """The model a baseline evaluates ``shot``-shot tasks with."""
    from metantk_nas.baselines.algorithms import get_algorithm

    regime = get_algorithm(run["baseline"]).regime_for(shot)
    return f"{BASELINE_RUN}/train-{regime}/model.pt".format(**run)


def baseline_evaluate_argv(run: Mapping[str, Any], shot: int | str) -> list[str]:
    """``metantk-nas baseline evaluate`` arguments: a baseline's own protocol on ``shot``-shot tasks."""
    return ["baseline", "evaluate", run["baseline"], "--config",
            settings_file("baseline_evaluate", {**run, "shot": shot}), "--model", baseline_model(run, shot),
            "--dataset", STORE.format(**run), "--out", f"{BASELINE_RUN}/evaluate".format(**run)]


def baseline_probe_argv(run: Mapping[str, Any], shot: int | str) -> list[str]:
    """``metantk-nas evaluate`` arguments: the searched cells' linear probe on a baseline's features."""
    return ["evaluate", "--config", settings_file("baseline_probe", {**run, "shot": shot}),
            "--model", baseline_model(run, shot), "--dataset", STORE.format(**run),
            "--out", f"{BASELINE_RUN}/probe".format(**run)]


def table_argv(config: Mapping[str, Any], table: str) -> list[str]:
    """``metantk-nas report table1|table2`` arguments."""
    argv = ["report", table, "--runs"] + [RUN.format(**run) for run in table_runs(config, table)]
    if table == "table1" and baseline_runs(config):
        argv += ["--baselines"] + [BASELINE_RUN.format(**run) for run in baseline_runs(config)]
    if paper_datasets(config):
        argv += ["--paper-dataset"] + paper_datasets(config)
    return argv + ["--out", f"results/{table}.csv"]


def figures_argv(config: Mapping[str, Any]) -> list[str]:
    """``metantk-nas report figures`` arguments over every run."""
    argv = ["report", "figures", "--runs"] + [RUN.format(**run) for run in runs(config)]
    if paper_datasets(config):
        argv += ["--paper-dataset"] + paper_datasets(config)
    return argv + ["--ablation-dataset", config["ablation_dataset"], "--out", FIGURES]


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One job of the DAG: its rule, wildcards, command line and (for the stages) resolved settings."""

    rule: str
    wildcards: dict[str, Any] = field(hash=False)
    argv: tuple[str, ...]
    settings: dict[str, Any] | None = field(default=None, hash=False)

    def name(self) -> str:
        """``search dataset=mini cells=5 method=metantk-nas seed=1`` (as Snakemake prints wildcards)."""
        return " ".join([self.rule] + [f"{key}={value}" for key, value in self.wildcards.items()])


def jobs(config: Mapping[str, Any]) -> list[Job]:
    """Every job of the DAG that ``snakemake`` builds from ``config`` (``all`` and ``settings`` excepted; the proxy
    study's when it is enabled)."""
    from metantk_nas.baselines.algorithms import get_algorithm

    found = [Job("prepare", {"dataset": name}, tuple(prepare_argv(config, name)))
             for name in datasets_needed(config)]
    studied = study_runs(config) if config["study"].get("enabled") else []
    for run in runs(config) + [run for run in studied if run not in runs(config)]:
        found.append(Job("search", dict(run), tuple(search_argv(run)), job_settings(config, "search", run)))
        found.append(Job("train", dict(run), tuple(train_argv(run)), job_settings(config, "train", run)))
        found += [Job("evaluate", {**run, "shot": shot}, tuple(evaluate_argv(run, shot)),
                      job_settings(config, "evaluate", {**run, "shot": shot})) for shot in SHOTS]
        found.append(Job("draw_cells", dict(run), tuple(draw_argv(run))))
    for run in baseline_runs(config):
        algorithm = get_algorithm(run["baseline"])
        found += [Job("baseline_train", {**run, "regime": regime}, tuple(baseline_train_argv(run, regime)),
                      job_settings(config, "baseline_train", {**run, "regime": regime}))
                  for regime in algorithm.regimes()]
        if algorithm.protocol != "probe":
            found += [Job("baseline_evaluate", {**run, "shot": shot}, tuple(baseline_evaluate_argv(run, shot)),
                          job_settings(config, "baseline_evaluate", {**run, "shot": shot})) for shot in SHOTS]
        found += [Job("baseline_probe", {**run, "shot": shot}, tuple(baseline_probe_argv(run, shot)),
                      job_settings(config, "baseline_probe", {**run, "shot": shot})) for shot in SHOTS]
    found += [Job("table", {"table": table}, tuple(table_argv(config, table))) for table in TABLES]
    found.append(Job("figures", {}, tuple(figures_argv(config))))
    if config["theory"]["enabled"]:
        found.append(Job("theory", {}, tuple(theory_argv(config)), job_settings(config, "theory", {})))
    found += [Job("study_score", dict(run), tuple(study_score_argv(config, run)),
                  job_settings(config, "study_score", run)) for run in studied]
    if studied:
        found.append(Job("study_summary", {}, tuple(study_summary_argv(config))))
    return found


def resolved_settings(job: Job) -> dict[str, Any]:
    """Every setting the job runs with: its settings file, or for the other rules its parsed command line."""
    if job.settings is not None:
        return job.settings
    from metantk_nas.cli import build_parser
    from metantk_nas.io import to_jsonable

    args = build_parser().parse_args(list(job.argv))
    return to_jsonable({key: value for key, value in vars(args).items() if key not in {"func", "threads", "command"}})

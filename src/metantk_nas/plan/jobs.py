"""The workflow's runs and jobs, and the command line and settings of each job.

One definition for the Snakefile (``workflow/rules/common.smk``) and ``metantk-nas settings``, so the
settings a user inspects are the settings the jobs get. Imports neither torch nor numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Methods whose cell is searched here; ``metanas`` trains a published cell instead.
SEARCHED_METHODS = ("metantk-nas", "te-nas", "linear-regions", "random")
METHODS = SEARCHED_METHODS + ("metanas",)
#: Methods of each table (Paper Table 1 rows reproduced here; Paper Table 2 rows).
TABLE1_METHODS = ("metantk-nas", "metanas")
TABLE2_METHODS = ("metantk-nas", "te-nas", "linear-regions", "random")
#: Which paper column a prepared dataset is compared with (by source format).
PAPER_DATASET = {
    "rfs-mini": "miniImageNet",
    "ravi-csv": "miniImageNet",
    "rfs-tiered": "tieredImageNet",
    "ren-tiered": "tieredImageNet",
}
SHOTS = (1, 5)
#: Keys of a dataset entry that only the rendered glyphs use.
GLYPH_KEYS = ("image_size", "images_per_class", "seed")

STORE = "resources/{dataset}"
RUN = "results/{dataset}/{cells}cell/{method}/seed{seed}"
THEORY = "results/theory"
FIGURES = "results/figures"
CELLS = f"{FIGURES}/cells/{{dataset}}-{{cells}}cell-{{method}}-seed{{seed}}"


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
    """Runs that feed Table 1 or Table 2."""
    if table == "table1":
        return runs(config, methods=TABLE1_METHODS)
    return runs(config, methods=TABLE2_METHODS, datasets=[config["ablation_dataset"]])


def theory_dataset(config: Mapping[str, Any]) -> str:
    """The dataset the theory checks read."""
    return config["theory"].get("dataset") or config["ablation_dataset"]


def datasets_needed(config: Mapping[str, Any]) -> list[str]:
    """Datasets some job reads (experiments, and the theory checks when enabled)."""
    names = {entry["dataset"] for entry in config["experiments"]}
    if config["theory"]["enabled"]:
        names.add(theory_dataset(config))
    return sorted(names)


def paper_datasets(config: Mapping[str, Any]) -> list[str]:
    """``name=paper column`` arguments for the report (only datasets the paper measured)."""
    return [f"{name}={PAPER_DATASET[entry['format']]}" for name, entry in sorted(config["datasets"].items())
            if entry["format"] in PAPER_DATASET]


# ---------------------------------------------------------------- command lines


def cli_options(options: Mapping[str, Any]) -> list[str]:
    """``{"lam_tau": inf, "decay_epochs": [60, 80]}`` -> ``["--lam-tau", "inf", "--decay-epochs", "60", "80"]``."""
    argv = []
    for key, value in options.items():
        argv.append(f"--{key.replace('_', '-')}")
        values = value if isinstance(value, (list, tuple)) else [value]
        argv.extend("inf" if isinstance(v, float) and math.isinf(v) else str(v) for v in values)
    return argv


def prepare_argv(config: Mapping[str, Any], dataset: str) -> list[str]:
    """``metantk-nas prepare`` arguments of one dataset (``--force``: the store is the workflow's own)."""
    entry = config["datasets"][dataset]
    argv = ["prepare", "--format", entry["format"], "--out", STORE.format(dataset=dataset), "--force"]
    if entry.get("root"):
        argv += ["--root", entry["root"]]
    return argv + cli_options({key: entry[key] for key in GLYPH_KEYS if key in entry})


def search_argv(config: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas search`` arguments of one run; ``metanas`` trains the configured published cell."""
    method = run["method"]
    argv = ["search", "--dataset", STORE.format(**run), "--method", "fixed" if method == "metanas" else method,
            "--cells", str(run["cells"]), "--channels", str(config["channels"]), "--seed", str(run["seed"]),
            "--out", f"{RUN}/search".format(**run)]
    if method == "metanas":
        return argv + ["--genotype", config["metanas_genotype"]]
    if method == "random":
        return argv
    return argv + cli_options(settings(config, "search", run["dataset"], run["cells"]))


def train_argv(config: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas train`` arguments of one run."""
    return ["train", "--genotype", f"{RUN}/search/genotype.json".format(**run), "--dataset", STORE.format(**run),
            "--cells", str(run["cells"]), "--channels", str(config["channels"]), "--seed", str(run["seed"]),
            "--out", f"{RUN}/train".format(**run)] + cli_options(settings(config, "train", run["dataset"],
                                                                                   run["cells"]))


def evaluate_argv(config: Mapping[str, Any], run: Mapping[str, Any], shot: int | str) -> list[str]:
    """``metantk-nas evaluate`` arguments of one run and shot count."""
    options = settings(config, "evaluate", run["dataset"], run["cells"])
    classifier, penalty = options[f"classifier_{shot}shot"], options[f"C_{shot}shot"]
    shared = {key: value for key, value in options.items() if not key.startswith(("classifier_", "C_"))}
    return ["evaluate", "--model", f"{RUN}/train/model.pt".format(**run), "--dataset", STORE.format(**run),
            "--shots", str(shot), "--seed", str(run["seed"]), "--classifier", classifier, "--C", str(penalty),
            "--out", f"{RUN}/evaluate".format(**run)] + cli_options(shared)


def draw_argv(run: Mapping[str, Any]) -> list[str]:
    """``metantk-nas arch draw`` arguments of one run's cells."""
    stem = Path(CELLS.format(**run))
    return ["arch", "draw", f"{RUN}/search/genotype.json".format(**run), "--out", str(stem.parent),
            "--stem", stem.name]


def theory_argv(config: Mapping[str, Any]) -> list[str]:
    """``metantk-nas theory`` arguments."""
    return ["theory", "--dataset", STORE.format(dataset=theory_dataset(config)), "--out", THEORY] + \
        cli_options(config["theory"].get("options", {}))


def table_argv(config: Mapping[str, Any], table: str) -> list[str]:
    """``metantk-nas report table1|table2`` arguments."""
    argv = ["report", table, "--runs"] + [RUN.format(**run) for run in table_runs(config, table)]
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
    """One job of the DAG: its rule, wildcards and command line."""

    rule: str
    wildcards: dict[str, Any] = field(hash=False)
    argv: tuple[str, ...]

    def name(self) -> str:
        """``search dataset=mini cells=5 method=metantk-nas seed=1`` (as Snakemake prints wildcards)."""
        return " ".join([self.rule] + [f"{key}={value}" for key, value in self.wildcards.items()])


def jobs(config: Mapping[str, Any]) -> list[Job]:
    """Every job of the DAG that ``snakemake`` builds from ``config`` (``all`` excepted)."""
    found = [Job("prepare", {"dataset": name}, tuple(prepare_argv(config, name)))
             for name in datasets_needed(config)]
    for run in runs(config):
        found.append(Job("search", dict(run), tuple(search_argv(config, run))))
        found.append(Job("train", dict(run), tuple(train_argv(config, run))))
        found += [Job("evaluate", {**run, "shot": shot}, tuple(evaluate_argv(config, run, shot))) for shot in SHOTS]
        found.append(Job("draw_cells", dict(run), tuple(draw_argv(run))))
    found += [Job(table, {}, tuple(table_argv(config, table))) for table in ("table1", "table2")]
    found.append(Job("figures", {}, tuple(figures_argv(config))))
    if config["theory"]["enabled"]:
        found.append(Job("theory", {}, tuple(theory_argv(config))))
    return found


def resolved_settings(job: Job) -> dict[str, Any]:
    """Every setting the job runs with: its command line parsed by the CLI into the stage's config.

    What the job's command would resolve itself (defaults included), without running it.
    """
    from metantk_nas.cli import build_parser

    args = build_parser().parse_args(list(job.argv))
    if job.rule == "search":
        from metantk_nas.search.cli import build_config

        return build_config(args).to_dict()
    if job.rule == "train":
        from metantk_nas.train.cli import build_config

        return build_config(args).to_dict()
    if job.rule == "evaluate":
        from metantk_nas.evaluate.cli import build_config

        return build_config(args).to_dict()
    if job.rule == "theory":
        from metantk_nas.theory.cli import build_config

        return build_config(args).to_dict()
    from metantk_nas.io import to_jsonable

    return to_jsonable({key: value for key, value in vars(args).items() if key not in {"func", "threads", "command"}})

"""A bad config value stops the workflow before any job, naming the key and the allowed values.

Each case is checked through ``plan.load`` (what the Snakefile calls while it is parsed); two cases also run
Snakemake itself, to show that its message reaches the user and that nothing is created.
"""

from __future__ import annotations

import pytest

from _workflow_helpers import REPO, default_config, snakemake, workflow_copy, write_config
from metantk_nas import plan


def _load_with(tmp_path, mutate) -> str:
    """The error ``plan.load`` raises for the default config changed by ``mutate``."""
    config = default_config()
    mutate(config)
    with pytest.raises(Exception) as error:  # noqa: PT011 - schema errors are Snakemake's WorkflowError
        plan.load([write_config(tmp_path, config)], workflow_dir=REPO, workdir=tmp_path)
    return str(error.value)


def _run_with(tmp_path, mutate) -> str:
    """Snakemake's output for the default config changed by ``mutate`` (it must fail before any job)."""
    root = workflow_copy(tmp_path)
    config = default_config()
    mutate(config)
    result = snakemake(root, "--cores", "1", "--configfile", str(write_config(root, config)))
    # Validation runs while the Snakefile is parsed: no job ran, nothing was written.
    assert result.returncode != 0
    for folder in ("resources", "results", "logs"):
        assert not (root / folder).exists(), f"{folder}/ was created although the config is invalid"
    return result.stdout + result.stderr


def _set_method(config):
    config["experiments"][0]["methods"].append("darts")


def _set_cells(config):
    config["experiments"][0]["cells"] = 7


def _real_dataset_without_root(config):
    config["datasets"]["mini"] = {"format": "rfs-mini"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set_method, ["'darts' is not one of", "'metantk-nas'", "'metanas'", "['experiments'][0]['methods']"]),
        (_set_cells, ["7 is not one of [5, 8]", "['experiments'][0]['cells']"]),
        (_real_dataset_without_root, ["'root' is a required property", "['datasets']['mini']"]),
    ],
    ids=["unknown-method", "cells-not-5-or-8", "missing-root"],
)
def test_schema_errors_name_key_and_allowed_values(tmp_path, mutate, expected):
    message = _load_with(tmp_path, mutate)
    for text in expected:
        assert text in message, f"{text!r} missing from:\n{message}"


def test_cross_key_errors(tmp_path):
    def unknown_dataset(config):
        config["experiments"][0]["dataset"] = "imagenet"

    message = _load_with(tmp_path, unknown_dataset)
    assert "experiments[0].dataset: 'imagenet' is not a key of 'datasets'" in message
    assert "allowed values: ['glyphs']" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["train"].update(decay_epochs=[5, 2]),
         "train settings of glyphs/5cell/metantk-nas/seed0: key 'decay_epochs' must be strictly ascending epochs "
         "in 1..4 (below epochs = 5), got [5, 2]"),
        (lambda c: c["train"].update(decay_epochs=[5]),
         "key 'decay_epochs' must be strictly ascending epochs in 1..4 (below epochs = 5), got [5]"),
        (lambda c: c.update(metanas_genotype="metanas/v9"),
         "config key metanas_genotype: metanas/v9: neither a zoo architecture"),
        (lambda c: c.update(datasets={"mini": {"format": "rfs-mini", "root": "no/such/folder"}},
                            ablation_dataset="mini", experiments=[{**c["experiments"][0], "dataset": "mini"}]),
         "config key datasets.mini.root: 'no/such/folder' is not a folder"),
        (lambda c: c["datasets"]["glyphs"].update(root="somewhere"),
         "config key datasets.glyphs.root: format glyphs is rendered, not read"),
        (lambda c: c["evaluate"].update(queries=16),
         "config key evaluate.queries (experiments[0]): 5 shots + 16 queries need that many images per class"),
        (lambda c: c["theory"]["options"].update(steps=2, checkpoints=3),
         "theory.options: key 'checkpoints' (3) exceeds steps (2)"),
        (lambda c: c["study"].update(dataset="mini"),
         "config key study.dataset: 'mini' is not a key of 'datasets'; allowed values: ['glyphs'] or null"),
        (lambda c: c["study"].update(cells=8),
         "config key study.cells: no experiment has dataset 'glyphs' and cells 8"),
        (lambda c: c["search"].update(proxies=["naswot"]) or c["experiments"][0]["methods"].append("custom")
         or c["study"].update(enabled=True, proxies=["naswot", "naswot"]),
         "study: key 'proxies' must be distinct names"),
        (lambda c: c["experiments"][0]["methods"].append("custom"),
         "key 'proxies' is required for method 'custom'"),
    ],
    ids=["decay-descending", "decay-at-last-epoch", "unknown-genotype", "missing-root", "glyphs-with-root",
         "queries-exceed-images", "theory-checkpoints", "study-dataset", "study-cells", "study-proxies",
         "custom-without-proxies"],
)
def test_cross_key_checks(tmp_path, mutate, expected):
    message = _load_with(tmp_path, mutate)
    assert expected in message, message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["experiments"][0]["methods"].append("darts"), "'darts' is not one of"),
        (lambda c: c["train"].update(decay_epochs=[2, 1]), "key 'decay_epochs' must be strictly ascending"),
    ],
    ids=["schema", "cross-key"],
)
def test_snakemake_stops_before_any_job(tmp_path, mutate, expected):
    message = _run_with(tmp_path, mutate)
    assert expected in message, message


def test_a_dataset_the_dag_does_not_need_may_lack_its_root(tmp_path):
    config = default_config()
    config["datasets"]["mini"] = {"format": "rfs-mini", "root": "not/there"}  # no experiment uses it
    loaded = plan.load([write_config(tmp_path, config)], workflow_dir=REPO, workdir=tmp_path)
    assert loaded["datasets"]["mini"]["root"] == "not/there"


def test_numbers_on_the_command_line_are_numbers(tmp_path):
    root = workflow_copy(tmp_path)
    result = snakemake(root, "-n", "--config", "evaluate={tasks: 100, C_1shot: 0.5}",
                       "search={lam_tau: .inf, reg: 1.0e-4, repeats: 2}", "train={decay_epochs: [1, 2]}")
    assert result.returncode == 0, result.stdout + result.stderr
    config = plan.load([], {"evaluate": {"tasks": "100", "C_1shot": "0.5"}, "train": {"decay_epochs": ["1", "2"]},
                            "search": {"lam_tau": ".inf"}}, workflow_dir=root, workdir=root)
    assert config["evaluate"]["tasks"] == 100 and config["evaluate"]["C_1shot"] == 0.5
    assert config["train"]["decay_epochs"] == [1, 2] and config["search"]["lam_tau"] == float("inf")


def test_custom_proxies_reach_only_the_custom_search_and_zoo_seeds_name_zoo_cells(tmp_path):
    from metantk_nas.space.zoo import list_zoo

    config = default_config()
    config["search"]["proxies"] = ["naswot", "linear-regions"]
    config["experiments"][0]["methods"].append("custom")
    loaded = plan.load([write_config(tmp_path, config)], workflow_dir=REPO, workdir=tmp_path)
    run = {"dataset": "glyphs", "cells": 5, "seed": 0}
    assert plan.job_settings(loaded, "search", {**run, "method": "custom"})["proxies"] == ["naswot", "linear-regions"]
    assert plan.job_settings(loaded, "search", {**run, "method": "metantk-nas"})["proxies"] is None
    assert plan.job_settings(loaded, "search", {**run, "method": "zoo", "seed": 4})["genotype"] == list_zoo()[4]
    with pytest.raises(ValueError, match="method zoo: seed 15 is not a zoo cell index"):
        plan.job_settings(loaded, "search", {**run, "method": "zoo", "seed": 15})
    # the study's scores: the experiment's search settings, with the study's seed for every run
    scored = plan.job_settings(loaded, "study_score", {**run, "method": "random", "seed": 3})
    assert scored["seed"] == 0 and scored["resolution"] == config["search"]["resolution"]
    # random 0..7, zoo 0..14, the experiment's other runs (metanas's cell is zoo cell 0: left out)
    names = [plan.study_name(r) for r in plan.study_runs(loaded)]
    assert names == [f"random/seed{s}" for s in range(8)] + [f"zoo/seed{i}" for i in range(15)] + [
        "metantk-nas/seed0", "te-nas/seed0", "linear-regions/seed0", "custom/seed0"]
    assert list_zoo()[0] == loaded["metanas_genotype"]
    loaded["study"]["zoo"] = False
    assert [plan.study_name(r) for r in plan.study_runs(loaded)][8:] == [
        "metantk-nas/seed0", "metanas/seed0", "te-nas/seed0", "linear-regions/seed0", "custom/seed0"]

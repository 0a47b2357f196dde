"""A bad config value stops the workflow before any job, naming the key and the allowed values."""

from __future__ import annotations

import pytest

from _workflow_helpers import default_config, snakemake, workflow_copy, write_config


def _run_with(tmp_path, mutate):
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
    message = _run_with(tmp_path, mutate)
    for text in expected:
        assert text in message, f"{text!r} missing from:\n{message}"


def test_cross_key_errors(tmp_path):
    def unknown_dataset(config):
        config["experiments"][0]["dataset"] = "imagenet"

    message = _run_with(tmp_path, unknown_dataset)
    assert "experiments[0].dataset: 'imagenet' is not a key of 'datasets'" in message
    assert "allowed values: ['glyphs']" in message

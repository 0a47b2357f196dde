"""The DAGs of the default and the paper config resolve; lint and format checks are clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _workflow_helpers import REPO, job_counts, snakemake, workflow_copy

#: Jobs of config/paper.yaml: 2 datasets; mini 2 cells x 5 methods x 3 seeds + tiered 2 x 2 x 3 = 42 runs; per
#: dataset and seed the 4 baselines: 6 models (MAML, ANIL per shot), 3 x 2 own protocols, 4 x 2 probes.
PAPER_JOBS = {"prepare": 2, "search": 42, "train": 42, "evaluate": 84, "draw_cells": 42,
              "baseline_train": 36, "baseline_evaluate": 36, "baseline_probe": 48,
              "table": 2, "figures": 1, "theory": 1, "all": 1, "settings": 42 + 42 + 84 + 1 + 36 + 36 + 48}
#: Jobs of config/config.yaml: one dataset, 5 cells, 5 methods, 1 seed, the 4 baselines.
DEFAULT_JOBS = {"prepare": 1, "search": 5, "train": 5, "evaluate": 10, "draw_cells": 5,
                "baseline_train": 6, "baseline_evaluate": 6, "baseline_probe": 8,
                "table": 2, "figures": 1, "theory": 1, "all": 1, "settings": 5 + 5 + 10 + 1 + 6 + 6 + 8}


def test_default_config_dry_run(tmp_path):
    result = snakemake(workflow_copy(tmp_path), "-n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == {**DEFAULT_JOBS, "total": sum(DEFAULT_JOBS.values())}


def test_study_dry_run(tmp_path):
    """`snakemake study`: the 26 runs of the embedded study (8 random cells, 15 zoo cells, the experiment's 3
    searched cells; its metanas cell is zoo cell 0), each drawn or searched, trained, evaluated and scored, then
    the summary."""
    result = snakemake(workflow_copy(tmp_path), "-n", "study")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = 26
    study = {"prepare": 1, "search": runs, "train": runs, "evaluate": 2 * runs, "study_score": runs,
             "study_summary": 1, "study": 1, "settings": runs * 5}
    assert job_counts(result.stdout) == {**study, "total": sum(study.values())}
    for run in ("random/seed7", "zoo/seed14", "metantk-nas/seed0", "linear-regions/seed0"):
        assert f"results/glyphs/5cell/{run}/study/scores.csv" in result.stdout
    for run in ("random/seed8", "metanas/seed0"):
        assert f"results/glyphs/5cell/{run}/" not in result.stdout


def test_a_custom_proxy_method_runs_in_the_workflow(tmp_path):
    root = workflow_copy(tmp_path)
    result = snakemake(root, "-n", "--config", "search={proxies: [naswot, linear-regions]}",
                       "experiments=[{dataset: glyphs, cells: 5, seeds: [0], methods: [custom, random]}]")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results/glyphs/5cell/custom/seed0/search/genotype.json" in result.stdout


def test_paper_config_with_slurm_profile(tmp_path):
    root = workflow_copy(tmp_path)
    for name in ("miniImageNet", "tieredImageNet"):  # the roots config/paper.yaml names must exist
        (root / "data" / name).mkdir(parents=True)
    result = snakemake(root, "-n", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == {**PAPER_JOBS, "total": sum(PAPER_JOBS.values())}
    # Every GPU rule asks SLURM for one GPU; the other rules ask for none.
    blocks = re.findall(r"\nrule (\w+):\n(.*?)\n\n", result.stdout, flags=re.S)
    assert blocks
    for rule, block in blocks:
        resources = re.search(r"resources: (.*)", block)
        if rule in {"search", "train", "evaluate", "baseline_train", "baseline_evaluate", "baseline_probe"}:
            assert resources and "gpu=1" in resources.group(1), block
        elif resources:
            assert "gpu=" not in resources.group(1), block
    assert "results/mini/8cell/metantk-nas/seed3/search/genotype.json" in result.stdout


def test_lint_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("snakefmt", path=str(Path(sys.executable).parent)) is None,
                    reason="snakefmt is part of the [test] extra")
def test_snakefmt_clean():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    result = subprocess.run([snakefmt, "--check", "Snakefile", "workflow/"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

"""The local profiles: profiles/cpu runs one-thread jobs side by side; `make run` picks it without CUDA."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _workflow_helpers import REPO, snakemake, workflow_copy

#: Rules that must declare a GPU (resources gpu=1) and, for a GPU node, several host threads.
GPU_RULES = {"search", "train", "evaluate", "baseline_train", "baseline_evaluate", "baseline_probe"}


def _gpu_rules(dry_run: str) -> set[str]:
    """Rules whose jobs declare ``gpu=1`` in a dry-run."""
    return {rule for rule, block in re.findall(r"\n(?:local)?rule (\w+):\n(.*?)\n\n", dry_run, flags=re.S)
            if re.search(r"resources: .*\bgpu=1\b", block)}


def _threads_by_rule(dry_run: str) -> dict[str, set[int]]:
    """{rule: thread counts of its jobs} from a dry-run (Snakemake prints `threads:` only above 1)."""
    threads: dict[str, set[int]] = {}
    for rule, block in re.findall(r"\n(?:local)?rule (\w+):\n(.*?)\n\n", dry_run, flags=re.S):
        found = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        threads.setdefault(rule, set()).add(int(found.group(1)) if found else 1)
    return threads


def test_cpu_profile_runs_every_gpu_rule_with_one_thread_and_no_gpu_limit(tmp_path):
    profile = yaml.safe_load((REPO / "profiles/cpu/config.yaml").read_text())
    assert "resources" not in profile, "a gpu resource would run the GPU rules one at a time on a CPU"
    root = workflow_copy(tmp_path)
    result = snakemake(root, "-n", "--profile", "profiles/cpu", "--cores", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    threads = _threads_by_rule(result.stdout)
    assert _gpu_rules(result.stdout) == GPU_RULES
    for rule in GPU_RULES | {"theory"}:
        assert threads[rule] == {1}, (rule, threads[rule])
    # The GPU profile keeps the rules' own thread counts (host threads feeding the GPU).
    local = snakemake(root, "-n", "--profile", "profiles/local", "--cores", "4")
    assert local.returncode == 0, local.stdout + local.stderr
    assert all(n > 1 for n in _threads_by_rule(local.stdout)["train"])


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(("cuda", "expected"), [(False, "profiles/cpu"), (True, "profiles/local")])
def test_make_run_picks_the_profile_by_cuda(tmp_path, cuda, expected):
    # A stand-in interpreter whose torch reports CUDA or not; an up-to-date stamp so make installs nothing.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(f"class cuda:\n    is_available = staticmethod(lambda: {cuda})\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()
    os.utime(stamp, (2**31, 2**31))
    result = subprocess.run(["make", "-s", "profile", f"BIN={bin_dir}", f"STAMP={stamp}"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    assert Path(REPO / expected / "config.yaml").is_file()

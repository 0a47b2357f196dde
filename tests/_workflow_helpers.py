"""Helpers for the workflow tests: a scratch copy of the workflow and a Snakemake runner."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def workflow_copy(tmp_path: Path) -> Path:
    """Copy the Snakefile, rules, configs and profiles into ``tmp_path`` (sources linked, not copied)."""
    for name in ("Snakefile",):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "src").symlink_to(REPO / "src", target_is_directory=True)
    return tmp_path


def write_config(root: Path, config: dict) -> Path:
    """Write ``config`` as ``root/test.yaml`` and return its path."""
    path = root / "test.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def default_config() -> dict:
    """config/config.yaml as a dict."""
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))


def snakemake(root: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run Snakemake in ``root`` (no workflow profile), capturing stdout and stderr together."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "none", *args],
        cwd=root, capture_output=True, text=True, timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry-run as {rule: count}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts

"""``make gpu-check`` without a GPU: one line naming the missing CUDA and exit status 2, no JSON; the same
script at toy sizes on the CPU (``--tiny``) runs every section and writes the JSON."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1",
                   "METANTK_GPU_LOCK_DIR": str(tmp_path / "locks"), **env}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("args", [[], ["--check-cuda"], ["--quick", "--device", "cuda:0"]])
def test_without_cuda_one_line_and_no_json(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "gpu-check.json"
    result = _run([*args, "--out", str(out)], tmp_path, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2
    assert result.stdout == ""
    assert re.fullmatch(r"gpu-check: error: no CUDA device \(torch [^,]+, .+\): run it on a GPU machine\n", result.stderr)
    assert not out.exists() and not list(tmp_path.glob("*.json"))


def test_make_target_checks_cuda_first_then_runs_the_cuda_tests_and_the_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ngpu-check:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert [line.startswith("\t") for line in recipe] == [True] * 3
    assert "gpu_check.py --check-cuda" in recipe[0] and "pytest -q -m cuda" in recipe[1]
    assert "benchmarks/gpu_check.py" in recipe[2]
    assert "make gpu-check" in (ROOT / "README.md").read_text()


def test_tiny_cpu_run_writes_every_section(tmp_path: Path, strict_json) -> None:
    """The default code path (full search, both pairings) at toy sizes; its accuracy checks are noise at
    40 queries, so only the kernel checks must pass."""
    out = tmp_path / "tiny.json"
    result = _run(["--tiny", "--device", "cpu", "--threads", "1", "--out", str(out)], tmp_path)
    assert result.returncode in (0, 1), result.stderr
    payload = strict_json(out.read_text())
    assert payload["mode"] == "tiny" and payload["device"] == "cpu" and isinstance(payload["passed"], bool)
    assert set(payload["sections"]) == {"kernels", "search", "training", "evaluation"}
    rows = payload["rows"]
    assert {row["section"] for row in rows} == {"kernels", "search", "training", "evaluation", "total"}
    kernels = [row for row in rows if row["section"] == "kernels"]
    assert len(kernels) == 2 * 5 and all(row["passed"] for row in kernels)
    for pairing in ("official", "paired"):
        search = payload["sections"]["search"][pairing]
        assert not search["extrapolated"] and search["kernel_evaluations"] > 0
    assert sum(row["unit"] == "images/s" and row["value"] > 0 for row in rows) == 2
    assert sum(row["section"] == "evaluation" and row["passed"] is not None for row in rows) == 4
    assert payload["provenance"]["packages"] and "measurement" in result.stdout.splitlines()[0]

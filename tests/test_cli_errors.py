"""Bad input ends in one line ``metantk-nas CMD: error: …`` naming the file or key; nothing partial is left.

Each case runs the real console entry point in a subprocess (as a user would) and checks the exit
status, that stderr is exactly one line naming what is wrong, and that no output appeared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _train_helpers import write_random_store

SRC = Path(__file__).resolve().parents[1] / "src"


def cli(*args: str, user: int | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "metantk_nas.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, user=user)


def assert_one_line(result: subprocess.CompletedProcess, command: str, *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"metantk-nas {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _make_read_only(folder: Path) -> None:
    """No one may write in ``folder``: mode 555, and for root (who ignores modes) the immutable flag."""
    folder.chmod(0o555)
    if os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root without chattr: cannot make a folder read-only")


def test_read_only_output_folder(tmp_path):
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    _make_read_only(readonly)
    try:
        result = cli("search", "--method", "random", "--seed", "1", "--out", str(readonly / "run"))
        line = assert_one_line(result, "search", str(readonly))
        assert "permission denied" in line or "operation not permitted" in line, line
        assert list(readonly.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(readonly)], check=False)
        readonly.chmod(0o755)


def test_search_out_naming_an_existing_file(tmp_path):
    target = tmp_path / "genotype.txt"
    target.write_text("mine")
    result = cli("search", "--method", "random", "--seed", "1", "--out", str(target))
    assert_one_line(result, "search", str(target), "is a file")
    assert target.read_text() == "mine"


def test_non_utf8_genotype_file_is_named(tmp_path, tiny_model):
    _, store = tiny_model
    bad = tmp_path / "genotype.json"
    bad.write_bytes(b"\xff\xfe\x00 not text")
    result = cli("train", "--genotype", str(bad), "--dataset", str(store), "--out", str(tmp_path / "out"))
    assert_one_line(result, "train", str(bad), "not a UTF-8 text file")
    assert not (tmp_path / "out" / "model.pt").exists()


def test_model_whose_weights_do_not_match_its_genotype(tmp_path, tiny_model):
    model, store = tiny_model
    state = torch.load(model, map_location="cpu", weights_only=True)
    from metantk_nas.space import load_genotype

    state["genotype"] = load_genotype("metanas/in-v2").to_dict()  # other ops: other weight shapes
    edited = tmp_path / "model.pt"
    torch.save(state, edited)
    result = cli("evaluate", "--model", str(edited), "--dataset", str(store), "--shots", "1", "--tasks", "2",
                 "--queries", "2", "--out", str(tmp_path / "eval"), "--device", "cpu")
    assert_one_line(result, "evaluate", str(edited), "do not fit the network of its own genotype")
    assert not (tmp_path / "eval" / "1shot.json").exists()


def test_evaluate_refuses_a_store_of_another_image_size(tmp_path, tiny_model):
    model, _ = tiny_model
    other = write_random_store(tmp_path / "store24", classes=6, per_class=12, size=24)
    result = cli("evaluate", "--model", str(model), "--dataset", str(other), "--shots", "1", "--tasks", "2",
                 "--queries", "2", "--out", str(tmp_path / "eval"), "--device", "cpu")
    assert_one_line(result, "evaluate", str(other), "images are 24x24", str(model), "trained on 16x16")
    assert not (tmp_path / "eval" / "1shot.json").exists()


def test_a_second_writer_of_the_same_output_is_refused_or_waits(tmp_path):
    from metantk_nas.io import output_lock

    out = tmp_path / "search"
    holder = subprocess.Popen([sys.executable, "-c", (  # holds the lock until its stdin closes
        "import sys; sys.path.insert(0, sys.argv[1]); from metantk_nas.io import output_lock\n"
        "with output_lock(sys.argv[2]):\n    print('locked', flush=True); sys.stdin.read()"),
        str(SRC), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = cli("search", "--method", "random", "--seed", "1", "--out", str(out))
        assert_one_line(refused, "search", str(out), f"another process (pid {holder.pid}", "pass --wait")
        assert not (out / "genotype.json").exists()
        waiter = subprocess.Popen([sys.executable, "-m", "metantk_nas.cli", "search", "--method", "random", "--seed",
                                   "1", "--out", str(out), "--wait"], stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"})
        assert "waiting for another process" in waiter.stderr.readline()
        assert not (out / "genotype.json").exists()  # still waiting
        holder.stdin.close()
        assert waiter.wait(timeout=180) == 0, waiter.stderr.read()
        assert (out / "genotype.json").is_file()
    finally:
        holder.kill()
    with output_lock(out):  # the lock dies with its holder
        pass


def test_threads_reach_torch(tmp_path):
    result = cli("search", "--method", "random", "--seed", "1", "--out", str(tmp_path / "s"), "--threads", "3")
    assert result.returncode == 0, result.stderr
    device = json.loads((tmp_path / "s" / "genotype.json").read_text())["provenance"]["device"]
    assert (device["torch_threads"], device["torch_interop_threads"]) == (3, 3)
    probe = subprocess.run([sys.executable, "-c", (
        "import sys, numpy; sys.path.insert(0, sys.argv[1]); from metantk_nas.threads import limit_threads\n"
        "limit_threads(2); import os, threadpoolctl, torch\n"
        "print(sorted({i['num_threads'] for i in threadpoolctl.threadpool_info()}), os.environ['OMP_NUM_THREADS'],"
        " torch.get_num_threads())"), str(SRC)], capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["[2]", "2", "2"], probe.stdout

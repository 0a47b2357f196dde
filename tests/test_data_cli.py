"""``metantk-nas prepare`` and ``inspect`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from metantk_nas.cli import main
from metantk_nas.data.fixtures import write_rfs_fc100_fixture
from metantk_nas.data.store import open_split


@pytest.mark.filterwarnings("ignore:.*standard FC100:UserWarning")
def test_prepare_and_inspect_a_real_format(tmp_path, capsys):
    write_rfs_fc100_fixture(tmp_path / "root")
    assert main(["prepare", "--format", "rfs-fc100", "--root", str(tmp_path / "root"), "--out", str(tmp_path / "s")]) == 0
    assert open_split(tmp_path / "s", "val").num_classes == 20
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert main(["inspect", str(tmp_path / "s"), "--grid", str(grid), "--classes", "4", "--per-class", "2"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[: printed.index("}\n") + 1])["name"] == "FC100"
    assert "test: " in printed and '"classes": 20' in printed
    assert np.asarray(Image.open(grid)).shape == (4 * 32, 2 * 32, 3)


def test_prepare_glyphs(tmp_path):
    args = ["prepare", "--format", "glyphs", "--out", str(tmp_path / "g"), "--image-size", "16",
            "--images-per-class", "2", "--seed", "7"]
    assert main(args) == 0
    data = open_split(tmp_path / "g", "test")
    assert data.image_size == 16 and np.bincount(data.labels).min() == 2


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    assert main(["prepare", "--format", "rfs-mini", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["prepare", "--format", "rfs-mini", "--out", str(tmp_path / "o")]) == 1
    assert "--root is required" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nothing")]) == 1
    assert not (tmp_path / "o").exists()

"""Issue 8 acceptance on a tiny configuration, through the CLI (same code path as the workflow)."""

from __future__ import annotations

import csv
import json

import pytest

from metantk_nas.cli import main
from metantk_nas.data.glyphs import generate_glyphs
from metantk_nas.theory.outputs import OUTPUT_FILES

WIDTHS = (16, 1024)
STEPS = 80


@pytest.fixture(scope="module")
def theory_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("theory")
    store = generate_glyphs(root / "glyphs", image_size=16, images_per_class=3, seed=0)
    out = root / "out"
    code = main(["theory", "--dataset", str(store), "--out", str(out), "--widths", *map(str, WIDTHS),
                 "--steps", str(STEPS), "--tasks", "3", "--test-tasks", "6", "--image-size", "16",
                 "--jacobian-probes", "8", "--checkpoints", "1", "--device", "cpu", "--seed", "3"])
    assert code == 0
    return store, out, json.loads((out / "theory.json").read_text())


def test_outputs_are_complete_and_record_provenance(theory_run):
    _, out, result = theory_run
    for name in OUTPUT_FILES:
        assert (out / name).stat().st_size > 0, name
    assert result["config"]["widths"] == list(WIDTHS) and result["provenance"]["seed"] == 3
    assert result["provenance"]["config"]["steps"] == STEPS
    with open(out / "convergence.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(WIDTHS) * (STEPS + 1)
    with open(out / "kernel_regression.csv", newline="") as handle:
        assert [int(row["width"]) for row in csv.DictReader(handle)] == list(WIDTHS)
    summary = (out / "summary.md").read_text()
    assert summary.count("\n- ") == 5 and "Theorem 2" in summary


def test_loss_decays_geometrically_at_the_widest_width(theory_run):
    widest = theory_run[2]["widths"][-1]["convergence"]
    assert widest["fit_r2"] >= 0.99, widest
    assert widest["orders_of_magnitude"] >= 2.0, widest
    assert widest["rate_fitted"] < 1.0 and widest["bound_ratio_max"] <= 1.0 + 1e-9, widest


def test_kernel_gap_and_jacobian_movement_shrink_with_width(theory_run):
    smallest, widest = theory_run[2]["widths"][0], theory_run[2]["widths"][-1]
    assert widest["kernel_regression"]["gap_test"] < smallest["kernel_regression"]["gap_test"] / 2
    assert widest["jacobian_movement"][-1] < smallest["jacobian_movement"][-1] / 2
    assert widest["param_movement"][-1] < smallest["param_movement"][-1]
    assert theory_run[2]["claims"]["kernel_regression"]["supported"]


def test_bad_input_fails_with_a_clear_message(theory_run, tmp_path, capsys):
    store = theory_run[0]
    assert main(["theory", "--dataset", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    assert "nowhere" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("steps: 0\n")
    assert main(["theory", "--dataset", str(store), "--out", str(tmp_path / "o"), "--config", str(config)]) == 1
    assert "bad.yaml" in capsys.readouterr().err and not (tmp_path / "o").exists()

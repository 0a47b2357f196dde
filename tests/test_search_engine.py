"""End-to-end searches on a small glyph store: every method, auditability, determinism, resume.

Sizes are small for speed (2-cell supernet with C=2, 8×8 images, 2-way tasks, one repeat, and for the
kernel methods a 2-op start so that a search has one op round plus the edge stage); the code path is
the one a paper-size search takes. The linear-regions search runs the full 7-op, 6-round search.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metantk_nas.cli import main
from metantk_nas.search.cli import build_config, register
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import run_search
from metantk_nas.search.trace import read_trace
from metantk_nas.space import FinalNetwork, Genotype, load_genotype

TINY = dict(channels=2, cells=2, repeats=1, tasks=1, ways=2, ntk_images=4, resolution=8,
            region_batch_size=50, region_batches=1, device="cpu")
TWO_OPS = ["sep_conv_3x3", "max_pool_3x3BN"]
#: Candidates of a 2-op search: 18 edges × 2 ops in the op round, then 3 + 4 edges per cell type.
TWO_OP_CANDIDATES = 36 + 14


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def glyph_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from metantk_nas.data.glyphs import generate_glyphs

    return generate_glyphs(tmp_path_factory.mktemp("search") / "glyphs", image_size=32, images_per_class=4, seed=0)


def _search(store: Path, out: Path, **options) -> Genotype:
    return run_search(SearchConfig.from_dict({**TINY, **options}), store, out, progress=False)


def _check_outputs(out: Path, genotype: Genotype, method: str) -> dict:
    assert load_genotype(out / "genotype.json") == genotype
    search = json.loads((out / "search.json").read_text())
    assert search["method"] == method and search["genotype"] == str(genotype)
    assert search["device"] == "cpu" and search["gpu_hours"] == 0.0 and search["cpu_hours"] >= 0.0
    assert "provenance" in search and search["config"]["method"] == method
    network = FinalNetwork(genotype, C=4, n_cells=5, num_classes=5)  # valid: 2 distinct inputs in range per node
    assert network(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    return search


@pytest.fixture(scope="module")
def official_run(glyph_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Genotype]:
    out = tmp_path_factory.mktemp("official") / "out"
    return out, _search(glyph_store, out, method="metantk-nas", kernel="maml", ops=TWO_OPS)


def test_metantk_nas_official_run_is_auditable(official_run: tuple[Path, Genotype]) -> None:
    out, genotype = official_run
    search = _check_outputs(out, genotype, "metantk-nas")
    # official pairing: origin and candidate evaluated for every candidate and repeat
    assert search["kernel_evaluations"] == 2 * TWO_OP_CANDIDATES
    rows = read_trace(out / "trace.csv")
    assert len(rows) == TWO_OP_CANDIDATES
    ops_rows = [r for r in rows if r["stage"] == "ops"]
    # one op removed per edge
    assert sorted((r["cell"], r["edge"]) for r in ops_rows if r["removed"] == "1") == sorted(
        (cell, str(edge)) for cell in ("normal", "reduce") for edge in range(9))
    # which candidates the ranks remove, for given numbers, is pinned by tests/test_search_scripted.py
    for r in ops_rows:
        c0, c1 = float(r["cond_origin"]), float(r["cond_candidate"])
        assert float(r["delta_c"]) == float(np.round((c0 - c1) / c0, 3))  # NumPy's rounding, as the official ΔC
    # the edge stage keeps the 2 inputs that the genotype lists for nodes 3 and 4
    for cell in ("normal", "reduce"):
        kept = {int(r["edge"]) for r in rows if r["stage"] == "edges" and r["cell"] == cell and r["removed"] == "0"}
        inputs = {(2 + offset, source) for offset, node in enumerate(genotype.cell(cell == "reduce"))
                  for _, source in node}
        edges = ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2), (4, 3))
        assert {edges[e] for e in kept} == {pair for pair in inputs if pair[0] > 2}


def test_resume_after_interruption_gives_the_same_search(official_run, glyph_store: Path, tmp_path: Path) -> None:
    reference_out, reference = official_run
    out, work = tmp_path / "out", tmp_path / "work"
    cfg = SearchConfig.from_dict({**TINY, "method": "metantk-nas", "kernel": "maml", "ops": TWO_OPS})

    class Interrupted(RuntimeError):
        pass

    def stop_after_first_round(finished: int) -> None:
        if finished == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_search(cfg, glyph_store, out, work, on_round_end=stop_after_first_round, progress=False)
    assert not out.exists() and (work / "search_state.json").is_file()
    with pytest.raises(ValueError, match="different config"):
        run_search(cfg.replace(repeats=2), glyph_store, out, work, progress=False)
    finished = []
    resumed = run_search(cfg, glyph_store, out, work, on_round_end=finished.append, progress=False)
    assert finished == [2]  # only the edge stage ran in the second session
    assert resumed == reference
    assert (out / "trace.csv").read_text() == (reference_out / "trace.csv").read_text()
    search = json.loads((out / "search.json").read_text())
    assert search["sessions"] == 2 and search["kernel_evaluations"] == 2 * TWO_OP_CANDIDATES
    assert not work.exists()  # state removed once the outputs are written


def test_paired_needs_about_half_the_kernel_evaluations(glyph_store: Path, tmp_path: Path) -> None:
    genotype = _search(glyph_store, tmp_path, method="metantk-nas", kernel="anil", lam_tau=1.0, reg=1e-5,
                       pairing="paired", ops=TWO_OPS)
    search = _check_outputs(tmp_path, genotype, "metantk-nas")
    # one origin per round and repeat: 1 op round + 4 edge groups (nodes 3 and 4 of both cells)
    assert search["kernel_evaluations"] == TWO_OP_CANDIDATES + 1 + 4
    assert search["kernel_evaluations"] <= 0.55 * 2 * TWO_OP_CANDIDATES
    rows = read_trace(tmp_path / "trace.csv")
    op_rows = [r for r in rows if r["stage"] == "ops"]
    assert len({r["cond_origin"] for r in op_rows}) == 1  # the same origin for every candidate


def test_te_nas_is_deterministic(glyph_store: Path, tmp_path: Path) -> None:
    first = _search(glyph_store, tmp_path / "a", method="te-nas", ops=TWO_OPS, pairing="paired")
    second = _search(glyph_store, tmp_path / "b", method="te-nas", ops=TWO_OPS, pairing="paired")
    assert first == second
    assert (tmp_path / "a" / "trace.csv").read_text() == (tmp_path / "b" / "trace.csv").read_text()
    _check_outputs(tmp_path / "a", first, "te-nas")


def test_linear_regions_full_seven_op_search(glyph_store: Path, tmp_path: Path) -> None:
    genotype = _search(glyph_store, tmp_path / "a", method="linear-regions", region_batch_size=20)
    search = _check_outputs(tmp_path / "a", genotype, "linear-regions")
    assert search["kernel_evaluations"] == 0 and search["candidates"] == 486 + 14
    rows = read_trace(tmp_path / "a" / "trace.csv")
    assert [sum(r["stage"] == "ops" and r["round"] == str(i) for r in rows) for i in range(6)] == [126, 108, 90, 72, 54, 36]
    assert all(r["delta_c"] == "0.0" and r["cond_origin"] == "" for r in rows)
    # another seed draws other weights and inputs
    _search(glyph_store, tmp_path / "b", method="linear-regions", region_batch_size=20, ops=TWO_OPS, seed=1)
    _search(glyph_store, tmp_path / "c", method="linear-regions", region_batch_size=20, ops=TWO_OPS, seed=2)
    assert (tmp_path / "b" / "trace.csv").read_text() != (tmp_path / "c" / "trace.csv").read_text()


def test_random_and_fixed_need_no_dataset(tmp_path: Path) -> None:
    first = run_search(SearchConfig(method="random", seed=7), None, tmp_path / "r1", progress=False)
    assert run_search(SearchConfig(method="random", seed=7), None, tmp_path / "r2", progress=False) == first
    _check_outputs(tmp_path / "r1", first, "random")
    assert read_trace(tmp_path / "r1" / "trace.csv") == []
    fixed = run_search(SearchConfig(method="fixed", genotype="metanas/in-v2"), None, tmp_path / "f", progress=False)
    assert fixed == load_genotype("metanas/in-v2")
    _check_outputs(tmp_path / "f", fixed, "fixed")
    with pytest.raises(ValueError, match="needs a dataset"):
        run_search(SearchConfig(), None, tmp_path / "x", progress=False)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", "--method", "random", "--seed", "3", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    assert load_genotype(tmp_path / "cli" / "genotype.json") == run_search(
        SearchConfig(method="random", seed=3), None, tmp_path / "api", progress=False)
    config = tmp_path / "search.yaml"
    config.write_text("search:\n  method: random\n  repeets: 2\n")
    assert main(["search", "--config", str(config), "--out", str(tmp_path / "bad")]) == 1
    assert "unknown key(s) ['repeets']" in capsys.readouterr().err
    assert main(["search", "--method", "fixed", "--out", str(tmp_path / "bad")]) == 1
    assert "'genotype' is required for methods ['zoo', 'fixed']" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["search", "--out", "o", "--preset", "mini", "--cells", "8", "--reg", "1e-4"])
    cfg = build_config(args)
    assert (cfg.kernel, cfg.lam_tau, cfg.reg, cfg.cells) == ("anil", 1.0, 1e-4, 8)

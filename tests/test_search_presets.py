"""The search methods are presets of proxy lists: each reproduces, byte for byte, the trace and genotype that the
search wrote before methods became lists of proxies (``tests/data/presets``, recorded by its ``record.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _preset_helpers import GOLDEN, PRESET_RUNS, run_preset, search

from metantk_nas.io import read_json

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("preset-store")


@pytest.mark.parametrize("name", list(PRESET_RUNS))
def test_preset_reproduces_recorded_trace_and_genotype(name: str, store_root: Path, tmp_path: Path) -> None:
    out = run_preset(name, tmp_path / "out", store_root)
    assert (out / "trace.csv").read_bytes() == (GOLDEN / f"{name}.trace.csv").read_bytes()
    assert read_json(out / "genotype.json")["string"] + "\n" == (GOLDEN / f"{name}.genotype.txt").read_text()


def test_custom_list_of_a_presets_proxies_is_that_preset(store_root: Path, tmp_path: Path) -> None:
    name = "metantk-nas-maml-official"
    search({**PRESET_RUNS[name], "method": "custom", "proxies": ["metantk", "linear-regions"]}, tmp_path / "out",
           store_root)
    assert (tmp_path / "out" / "trace.csv").read_bytes() == (GOLDEN / f"{name}.trace.csv").read_bytes()


def test_custom_zero_cost_search_traces_every_proxy(store_root: Path, tmp_path: Path) -> None:
    """A search ranked by NASWOT, linear regions and #params: the trace carries each proxy's values, its
    per-repeat Δ = (origin − candidate)/|origin| rounded to 3 decimals, the mean, the rank and their sum, and
    every op round removes, per edge, a candidate of the smallest summed rank."""
    import numpy as np
    from _preset_helpers import THREE_OPS

    from metantk_nas.search.trace import read_trace, trace_columns

    proxies = ["naswot", "linear-regions", "params"]
    search({"method": "custom", "proxies": proxies, "ops": THREE_OPS}, tmp_path / "out", store_root)
    rows = read_trace(tmp_path / "out" / "trace.csv")
    assert list(rows[0]) == list(trace_columns(["naswot", "params"]))
    assert all(r["cond_origin"] == "" and r["rank_c"] == "0" for r in rows)
    for r in rows:
        for stem in ("naswot", "params"):
            origin, candidate = float(r[f"{stem}_origin"]), float(r[f"{stem}_candidate"])
            assert float(r[f"delta_{stem}"]) == float(np.round((origin - candidate) / abs(origin), 3))
        assert int(r["score"]) == int(r["rank_naswot"]) + int(r["rank_r"]) + int(r["rank_params"])
    removing_sep_conv = [r for r in rows if r["op"] == "sep_conv_3x3" and r["stage"] == "ops"]
    assert all(float(r["params_candidate"]) < float(r["params_origin"]) for r in removing_sep_conv)
    ops_rows = [r for r in rows if r["stage"] == "ops" and r["repeat"] == "0"]
    for key in {(r["round"], r["cell"], r["edge"]) for r in ops_rows}:
        edge = [r for r in ops_rows if (r["round"], r["cell"], r["edge"]) == key]
        (removed,) = [r for r in edge if r["removed"] == "1"]
        assert int(removed["score"]) == min(int(r["score"]) for r in edge)

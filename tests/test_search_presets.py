"""The search methods are presets of proxy lists: each reproduces, byte for byte, the trace and genotype that the
search wrote before methods became lists of proxies (``tests/data/presets``, recorded by its ``record.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _preset_helpers import GOLDEN, PRESET_RUNS, run_preset

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

"""``metantk-nas kernel`` measures with the search's recipe: the value the search itself records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from metantk_nas.cli import main
from metantk_nas.kernels.cli import KERNELS
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import run_search
from metantk_nas.search.trace import read_trace

#: A tiny paired search (2 cells, C=2, 3-way 2-shot tasks: not the old hard-coded 5-way 1-shot).
SETTINGS = dict(channels=2, cells=2, repeats=1, tasks=2, ways=3, shots=2, queries=1, resolution=8,
                region_batch_size=50, region_batches=1, device="cpu", method="metantk-nas", kernel="anil",
                lam_tau=1.0, reg=1e-5, pairing="paired", ops=["sep_conv_3x3", "max_pool_3x3BN"], seed=4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def glyph_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from metantk_nas.data.glyphs import generate_glyphs

    return generate_glyphs(tmp_path_factory.mktemp("kernel") / "glyphs", image_size=16, images_per_class=4, seed=0)


def _kernel(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main(["kernel", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_supernet_value_is_the_paired_search_origin(glyph_store: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    run_search(SearchConfig.from_dict(SETTINGS), glyph_store, tmp_path / "search", progress=False)
    first = next(r for r in read_trace(tmp_path / "search" / "trace.csv") if r["stage"] == "ops" and r["round"] == "0")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    out = _kernel(capsys, "--supernet", "--dataset", str(glyph_store), "--kernel", "metantk-anil",
                  "--config", str(settings))
    assert out["condition_number"] == float(first["cond_origin"])
    assert out["size"] == SETTINGS["tasks"] * SETTINGS["ways"] * SETTINGS["queries"]  # MetaNTK over the queries
    assert out["config"]["ways"] == 3 and out["config"]["shots"] == 2 and out["config"]["kernel"] == "metantk-anil"


def test_flags_and_genotype(glyph_store: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--dataset", str(glyph_store), "--cells", "2", "--channels", "2", "--resolution", "8", "--device", "cpu"]
    ntk = _kernel(capsys, "--genotype", "metanas/in-v2", "--kernel", "ntk", "--ntk-images", "4", *common)
    assert ntk["size"] == 4 and math.isfinite(ntk["condition_number"])
    maml = _kernel(capsys, "--genotype", "metanas/in-v2", "--kernel", "metantk-maml", "--ways", "2", "--tasks", "1",
                   *common)
    assert maml["size"] == 2 and maml["config"]["architecture"] == "metanas/in-v2"
    assert set(KERNELS) == {"metantk-maml", "metantk-anil", "ntk"}
    assert main(["kernel", "--supernet", "--kernel", "ntk", "--ways", "1", *common]) == 1
    assert "key 'ways'" in capsys.readouterr().err

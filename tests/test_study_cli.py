"""``metantk-nas study score`` and ``study summarise`` end to end on a small glyph store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from metantk_nas.cli import main
from metantk_nas.proxies.registry import PROXIES
from metantk_nas.space import Genotype
from metantk_nas.study.summary import SUMMARY_COLUMNS

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--channels", "2", "--cells", "2", "--resolution", "8", "--tasks", "1", "--ways", "2", "--ntk-images", "4",
         "--region-batch-size", "50", "--region-batches", "1", "--device", "cpu"]


def _cell(op: str) -> list[list[tuple[str, int]]]:
    return [[(op, 0), (op, 1)], [(op, 0), (op, 2)], [(op, 1), (op, 3)]]


#: Architectures whose parameter and MAC counts are ordered at C = 2: separable convs (2 × (9C + C²) weights per
#: op) > 3×3 convs (9C²) > pools (none).
CELLS = {"sep": "sep_conv_3x3", "conv": "conv_3x3", "pool": "max_pool_3x3BN"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    from metantk_nas.data.glyphs import generate_glyphs

    root = tmp_path_factory.mktemp("study")
    store = generate_glyphs(root / "glyphs", image_size=32, images_per_class=4, seed=0)
    files = {}
    for name, op in CELLS.items():
        genotype = root / f"{name}.json"
        genotype.write_text(json.dumps(Genotype(normal=_cell(op), reduce=_cell(op)).to_dict()))
        files[name] = root / f"{name}.csv"
        assert main(["study", "score", "--dataset", str(store), "--genotype", str(genotype), "--name", name,
                     "--out", str(files[name]), "--seeds", "2", *SMALL]) == 0
    return store, files


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_proxy_and_seed_is_scored_and_reproducible(scored, tmp_path: Path) -> None:
    store, files = scored
    rows = _rows(files["sep"])
    assert [(r["proxy"], r["seed"]) for r in rows] == [(p, s) for s in "01" for p in PROXIES]
    assert all(r["architecture"] == "sep" and float(r["seconds"]) >= 0 for r in rows)
    genotype = tmp_path / "sep.json"
    genotype.write_text(json.dumps(Genotype(normal=_cell("sep_conv_3x3"), reduce=_cell("sep_conv_3x3")).to_dict()))
    again = tmp_path / "again.csv"
    assert main(["study", "score", "--dataset", str(store), "--genotype", str(genotype), "--name", "sep",
                 "--out", str(again), "--seeds", "2", "--proxies", "metantk-maml", "linear-regions", "naswot",
                 *SMALL]) == 0
    first = {(r["proxy"], r["seed"]): r["score"] for r in rows}
    assert {(r["proxy"], r["seed"]): r["score"] for r in _rows(again)} == {
        key: first[key] for key in first if key[0] in ("metantk-maml", "linear-regions", "naswot")}
    # a second seed is a fresh draw of the proxy's randomness (weights, tasks, images)
    assert first[("metantk-maml", "0")] != first[("metantk-maml", "1")]


def test_the_cost_proxies_order_the_cells_by_their_weights(scored) -> None:
    _, files = scored
    value = {(name, r["proxy"]): float(r["score"]) for name, path in files.items() for r in _rows(path)
             if r["seed"] == "0"}
    for proxy in ("params", "flops"):
        assert value["sep", proxy] > value["conv", proxy] > value["pool", proxy]


def test_summarise_ranks_each_proxy_against_accuracy(scored, tmp_path: Path) -> None:
    _, files = scored
    evaluated = []
    for accuracy, name in enumerate(["pool", "conv", "sep"]):  # accuracy ordered as the parameter count
        folder = tmp_path / "eval" / name
        folder.mkdir(parents=True)
        for shot in (1, 5):
            (folder / f"{shot}shot.json").write_text(json.dumps({"mean": 0.3 + 0.1 * accuracy + 0.01 * shot}))
        evaluated.append(f"{name}={folder}")
    out = tmp_path / "results" / "proxies.csv"
    assert main(["study", "summarise", "--scores", *map(str, files.values()), "--evaluated", *evaluated,
                 "--out", str(out), "--figures", str(tmp_path / "figures"), "--resamples", "200"]) == 0
    rows = {r["proxy"]: r for r in _rows(out)}
    combined = ["metantk-nas-maml", "metantk-nas-anil", "te-nas"]  # the searches' rank sums
    assert list(rows) == list(PROXIES) + combined and list(next(iter(rows.values()))) == list(SUMMARY_COLUMNS)
    assert rows["te-nas"]["label"] == "TE-NAS: rank sum"
    assert float(rows["params"]["tau_1shot"]) == 1.0 and float(rows["params"]["tau_5shot"]) == 1.0
    assert rows["params"]["top1_architecture"] == "sep" and rows["params"]["top1_rank_1shot"] == "1"
    assert float(rows["params"]["top1_acc_5shot"]) == pytest.approx(55.0)
    assert len(_rows(out.with_name("proxies_architectures.csv"))) == 3 * (len(PROXIES) + len(combined))
    for stem in ("proxies_scatter", "proxies_tau"):
        assert (tmp_path / "figures" / f"{stem}.svg").stat().st_size > 0
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 0


def test_a_bad_evaluated_argument_is_one_line(scored, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, files = scored
    assert main(["study", "summarise", "--scores", str(files["sep"]), "--evaluated", "sep",
                 "--out", str(tmp_path / "p.csv"), "--figures", str(tmp_path)]) != 0
    assert capsys.readouterr().err.strip() == "metantk-nas study: error: --evaluated 'sep': expected NAME=DIR"

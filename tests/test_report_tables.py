"""Table 1/Table 2 from synthetic run folders: aggregation over seeds, published values, differences."""

from __future__ import annotations

import csv
import json
import math

import pytest

from _report_helpers import make_baseline, make_run
from metantk_nas.cli import main
from metantk_nas.report.results import read_baseline, read_run
from metantk_nas.report.tables import COLUMNS, build_rows, published_value


@pytest.fixture
def runs(tmp_path):
    results = tmp_path / "results"
    folders = [
        make_run(results, "mini", 5, "metantk-nas", 1, acc1=63.0, acc5=80.0, params=1_770_000, hours=1.5, rounds=3),
        make_run(results, "mini", 5, "metantk-nas", 2, acc1=65.0, acc5=81.0, params=1_790_000, hours=1.7, rounds=3),
        make_run(results, "mini", 5, "metanas", 1, acc1=64.0, acc5=79.0, params=2_010_000, hours=0.0),
        make_run(results, "mini", 5, "random", 1, acc1=60.0, acc5=77.0, params=1_500_000, hours=0.0),
        make_run(results, "glyphs", 5, "metantk-nas", 0, acc1=90.0, acc5=95.0, params=100_000, hours=0.1, rounds=2),
    ]
    return folders


def test_table1_rows_aggregate_seeds_and_compare_with_the_paper(runs):
    rows = build_rows([read_run(p) for p in runs if "random" not in str(p)], "table1", {"mini": "miniImageNet"})
    rows = [r for r in rows if r["method"]]  # the rows kept at their published values: see the baselines test
    assert [(r["dataset"], r["method"]) for r in rows] == [
        ("glyphs", "metantk-nas"), ("mini", "metanas"), ("mini", "metantk-nas")]
    ntk = rows[2]
    assert ntk["seeds"] == "1 2"
    assert ntk["acc_1shot_mean"] == pytest.approx(64.0)
    assert ntk["acc_1shot_std"] == pytest.approx(math.sqrt(2.0))  # stdev of 63, 65 (ddof=1)
    assert (ntk["acc_1shot_paper_mean"], ntk["acc_1shot_paper_std"]) == (63.88, 0.81)
    assert ntk["acc_1shot_diff"] == pytest.approx(64.0 - 63.88)
    assert ntk["acc_5shot_diff"] == pytest.approx(80.5 - 80.07)
    assert ntk["params_m"] == pytest.approx(1.78)
    assert ntk["params_m_paper"] == 1.77
    assert ntk["search_hours"] == pytest.approx(1.6)
    assert ntk["search_gpu_hours_paper"] == 1.54
    assert ntk["search_gpu_hours_diff"] is None  # CPU hours are not compared with GPU hours
    assert "MAML kernel" in ntk["architecture"] and ntk["training"].startswith("RFS: 100 epochs")
    metanas = rows[1]
    assert metanas["acc_5shot_paper_mean"] == 79.75 and metanas["acc_1shot_std"] is None  # one seed
    assert "metanas/in-v2" in metanas["architecture"]
    glyphs = rows[0]
    assert glyphs["paper_dataset"] is None and glyphs["acc_1shot_paper_mean"] is None
    assert glyphs["acc_1shot_diff"] is None


def test_table1_lists_the_papers_rows_in_order_with_the_baselines(runs, tmp_path):
    results = tmp_path / "results"
    baselines = [
        make_baseline(results, "mini", "maml", 1, own=(47.0, 61.0), probe=(40.0, 55.0), params=32_901, per_shot=True),
        make_baseline(results, "mini", "maml", 2, own=(49.0, 63.0), probe=(42.0, 57.0), params=32_901, per_shot=True),
        make_baseline(results, "mini", "rfs", 1, own=None, probe=(61.0, 79.0), params=12_465_344, per_shot=False),
        make_baseline(results, "mini", "metaoptnet", 1, own=(62.0, 78.0), probe=(60.0, 77.0), params=12_424_321,
                      per_shot=False),
    ]
    cells = [read_run(p) for p in runs if "/mini/" in p.as_posix() and "random" not in p.as_posix()]
    rows = build_rows(cells, "table1", {"mini": "miniImageNet"}, [read_baseline(p) for p in baselines])
    assert [r["model"] for r in rows] == ["MAML [19]", "MetaOptNet [38]", "RFS [60]", "AutoMeta [32]", "T-NAS++ [40]",
                                          "MetaNAS [16]", "MetaNAS(retrained)", "MetaNTK-NAS"]
    maml = rows[0]
    assert (maml["method"], maml["cells"], maml["seeds"], maml["protocol"]) == ("maml", None, "1 2", "maml")
    assert maml["acc_1shot_mean"] == pytest.approx(48.0) and maml["acc_1shot_std"] == pytest.approx(math.sqrt(2))
    assert (maml["acc_1shot_paper_mean"], maml["acc_5shot_paper_mean"]) == (48.70, 63.11)
    assert maml["acc_5shot_diff"] == pytest.approx(62.0 - 63.11)
    assert maml["probe_1shot_mean"] == pytest.approx(41.0) and maml["probe_5shot_mean"] == pytest.approx(56.0)
    assert maml["params_m"] == pytest.approx(0.032901) and maml["params_m_paper"] == 0.03
    assert maml["architecture"] == "Conv4 (32 filters)" and maml["search_hours"] is None
    rfs = rows[2]
    assert rfs["protocol"] == "probe" and rfs["acc_1shot_mean"] == rfs["probe_1shot_mean"] == pytest.approx(61.0)
    assert rfs["architecture"] == "ResNet-12 (64-160-320-640)" and rfs["acc_5shot_paper_mean"] == 79.64
    autometa = rows[3]
    assert autometa["method"] is None and autometa["acc_1shot_mean"] is None
    assert (autometa["acc_1shot_paper_mean"], autometa["search_gpu_hours_paper"]) == (57.6, 2688)
    assert autometa["note"].startswith("not re-run: its search took 2688 GPU hours")
    ntk = rows[-1]
    assert ntk["protocol"] == "probe" and ntk["probe_1shot_mean"] == ntk["acc_1shot_mean"]
    markdown_out = tmp_path / "t1.csv"
    from metantk_nas.report.tables import write_table

    write_table(rows, markdown_out, "Table 1", {})
    text = markdown_out.with_suffix(".md").read_text()
    assert "| MAML [19] | mini (miniImageNet) | – | 1 2 | Conv4 (32 filters) |" in text
    assert "48.00 ± 1.41 (paper 48.70 ± 1.84, Δ -0.70)" in text and "| 41.00 ± 1.41 | 56.00 ± 1.41 |" in text
    with open(markdown_out, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["model"] for row in table] == [r["model"] for r in rows] and tuple(table[0]) == COLUMNS


def test_published_values_cover_both_tables():
    assert published_value("table1", "metantk-nas", "tieredImageNet", 8)["acc_5shot"] == [86.43, 0.53]
    assert published_value("table1", "metanas", "tieredImageNet", 5)["params_m"] == 2.17
    assert published_value("table1", "metantk-nas", "miniImageNet", 8)["search_gpu_hours"] == 1.92
    assert published_value("table2", "te-nas", "miniImageNet", 8)["acc_1shot"] == [63.51, 0.16]
    assert published_value("table2", "random", "miniImageNet", 5)["acc_5shot"] == [78.90, 0.58]
    assert published_value("table2", "random", "tieredImageNet", 5) is None
    assert published_value("table1", "metantk-nas", None, 5) is None


def test_cli_writes_csv_markdown_and_json(runs, tmp_path):
    out = tmp_path / "results" / "table2.csv"
    ablation = [p for p in runs if "/mini/" in p.as_posix() and "metanas" not in p.as_posix().split("/")[-2]]
    assert main(["report", "table2", "--runs", *map(str, ablation), "--paper-dataset", "mini=miniImageNet",
                 "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == COLUMNS
    assert [row["method"] for row in table] == ["metantk-nas", "random"]
    random_row = table[1]
    assert float(random_row["acc_1shot_mean"]) == pytest.approx(60.0)
    assert float(random_row["acc_1shot_paper_mean"]) == 62.55
    assert float(random_row["acc_1shot_diff"]) == pytest.approx(60.0 - 62.55)
    assert random_row["acc_1shot_std"] == ""  # one seed: no standard deviation
    markdown = out.with_suffix(".md").read_text()
    assert "| Random Cell | mini (miniImageNet) | 5 |" in markdown
    assert "60.00 (paper 62.55 ± 1.15, Δ -2.55)" in markdown
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["provenance"]["config"]["paper_datasets"] == {"mini": "miniImageNet"}


def test_bad_inputs_are_named(runs, tmp_path, capsys):
    (runs[0] / "evaluate" / "5shot.json").unlink()
    with pytest.raises(FileNotFoundError, match="5shot.json"):
        read_run(runs[0])
    with pytest.raises(ValueError, match="not a run folder"):
        read_run(tmp_path)
    assert main(["report", "table1", "--runs", str(runs[1]), "--paper-dataset", "mini=ImageNet",
                 "--out", str(tmp_path / "t.csv")]) == 1
    assert "NAME=COLUMN" in capsys.readouterr().err
    (runs[1] / "evaluate" / "1shot.json").write_text('{"mean": 63.0}')
    with pytest.raises(ValueError, match=r"1shot.json: key 'mean' must be a fraction"):
        read_run(runs[1])


def test_architecture_source_names_every_method() -> None:
    from pathlib import Path

    from metantk_nas.report.results import RunResult
    from metantk_nas.report.tables import architecture_source

    def run(method: str, **search) -> RunResult:
        return RunResult(Path("r"), "glyphs", 5, method, 0, "", search, 0.0, "cpu", {}, 1, {1: 50.0, 5: 60.0})

    assert architecture_source(run("custom", proxies=["naswot", "linear-regions"])) == \
        "search by naswot + linear-regions (rank sum)"
    assert architecture_source(run("zoo", genotype="metantk-nas/mini-5cell-1")) == "zoo cell metantk-nas/mini-5cell-1"
    assert architecture_source(run("metanas", genotype="metanas/in-v2")) == "published MetaNAS cell (metanas/in-v2)"

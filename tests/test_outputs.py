"""Every result goes through one writer per kind (metantk_nas.io): standard JSON with infinity spelled
``"inf"``, CSV from the ``csv`` module, figures as SVG + PNG."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from _report_helpers import make_run
from metantk_nas.cli import main
from metantk_nas.io import csv_text, float_from_json, json_text, save_figure, write_csv, write_json
from metantk_nas.options import INF

SRC = Path(__file__).resolve().parents[1] / "src" / "metantk_nas"


# -- JSON ---------------------------------------------------------------------------------------------


@dataclass
class _Record:
    value: float
    where: Path


def test_json_is_standard_and_spells_infinity_inf(tmp_path, strict_json):
    payload = {"inf": math.inf, "minus": -math.inf, "nan": math.nan, "finite": 0.1, "int": 3, "flag": True,
               "array": np.array([1.5, np.inf, -np.inf, np.nan]), "scalar": np.float64(np.inf),
               "nested": [(np.float32(2.5), {"deep": -math.inf})], "record": _Record(math.inf, Path("a/b"))}
    write_json(tmp_path / "out.json", payload)
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert text == json_text(payload) and text.endswith("}\n")
    assert strict_json(text) == {
        "inf": "inf", "minus": "-inf", "nan": None, "finite": 0.1, "int": 3, "flag": True,
        "array": [1.5, "inf", "-inf", None], "scalar": "inf", "nested": [[2.5, {"deep": "-inf"}]],
        "record": {"value": "inf", "where": "a/b"},
    }
    assert INF == "inf" and float_from_json("inf") == math.inf and float_from_json("-inf") == -math.inf
    assert float_from_json("info") == "info" and float_from_json(2) == 2
    with pytest.raises(ValueError, match="Infinity"):
        strict_json('{"x": Infinity}')  # the fixture is strict: Python's own parser accepts this


def test_search_state_round_trips_infinity_exactly(tmp_path, strict_json):
    from metantk_nas.search.state import SearchState, load_state, save_state
    from metantk_nas.search.trace import TRACE_COLUMNS

    base = {column: 0 for column in TRACE_COLUMNS} | {"stage": "ops", "cell": "normal", "op": "conv_3x3"}
    rows = [base | {"cond_origin": math.inf, "cond_candidate": -math.inf, "delta_c": 0.1 + 0.2, "delta_r": math.nan},
            base | {"cond_origin": None, "cond_candidate": None}]  # linear-regions: no condition number
    config, dataset = {"lam_tau": "inf", "seed": 1}, {"name": "glyphs"}
    state = SearchState(config=config, dataset=dataset, masks={"normal": [[True, False]]}, op_rounds=2,
                        trace=rows, removals=[{"stage": "ops", "round": 0, "removed": []}], elapsed_seconds=1 / 3)
    path = save_state(tmp_path, state)
    saved = strict_json(path.read_text(encoding="utf-8"))
    assert saved["trace"][0]["cond_origin"] == "inf" and saved["config"]["lam_tau"] == "inf"
    assert saved["trace"][0]["delta_r"] == "nan" and saved["trace"][1]["cond_origin"] is None
    loaded = load_state(tmp_path, config, dataset)
    assert math.isnan(loaded.trace[0].pop("delta_r")) and math.isnan(state.trace[0].pop("delta_r"))
    assert loaded == state
    assert loaded.trace[0]["cond_candidate"] == -math.inf and loaded.config["lam_tau"] == "inf"


def test_every_json_a_command_writes_is_standard(tmp_path, tiny_model, capsys, strict_json, one_thread):
    """search, train, evaluate, report, kernel and settings: files and printed JSON."""
    model, store = tiny_model
    commands = [
        ["search", "--method", "random", "--seed", "3", "--out", str(tmp_path / "search")],
        ["evaluate", "--model", str(model), "--dataset", str(store), "--shots", "1", "--tasks", "2", "--queries", "2",
         "--out", str(tmp_path / "evaluate"), "--device", "cpu", "--no-progress"],
        ["report", "table1", "--runs", str(make_run(tmp_path / "results", "mini", 5, "random", 1, acc1=60.0, acc5=70.0,
                                                    params=1, hours=0.0)),
         "--out", str(tmp_path / "table1.csv")],
    ]
    for argv in commands:
        assert main(argv) == 0, argv
    capsys.readouterr()
    files = sorted(tmp_path.rglob("*.json")) + sorted(model.parent.glob("*.json")) + sorted(store.rglob("*.json"))
    assert {path.name for path in files} >= {"genotype.json", "search.json", "1shot.json", "table1.json",
                                             "train.json", "dataset.json", "manifest.json", "classes.json"}
    for path in files:
        strict_json(path.read_text(encoding="utf-8"))

    assert main(["kernel", "--genotype", "metanas/v1", "--dataset", str(store), "--kernel", "metantk-maml",
                 "--seed", "0", "--cells", "2", "--channels", "2", "--tasks", "1", "--device", "cpu"]) == 0
    printed = strict_json(capsys.readouterr().out)
    assert printed["config"]["lam_tau"] == "inf" and math.isfinite(printed["condition_number"])
    assert main(["settings", "--json", "--rule", "search"]) == 0
    assert all(record["rule"] == "search" for record in strict_json(capsys.readouterr().out.split("\nnote:")[0]))


def _json_dumps_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"dump", "dumps"}
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "json"):
            yield node


#: Modules whose ``json.dumps`` payloads hold only strings and integers (genotypes, parameter counts).
_NO_FLOATS = {"space/cli.py", "space/genotype.py"}


def test_json_is_written_strictly_everywhere():
    """A ``json.dump(s)`` outside :mod:`metantk_nas.io` passes ``allow_nan=False`` (``NaN``/``Infinity`` raise)
    or a payload made JSON-ready by :func:`metantk_nas.io.to_jsonable` (which leaves none)."""
    loose = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        for call in _json_dumps_calls(ast.parse(path.read_text(encoding="utf-8"))):
            strict = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                         for k in call.keywords)
            strict |= bool(call.args) and isinstance(call.args[0], ast.Call) and getattr(
                call.args[0].func, "id", None) == "to_jsonable"
            if not strict and name not in _NO_FLOATS:
                loose.append(f"{name}:{call.lineno}")
    assert loose == []


# -- CSV and figures ----------------------------------------------------------------------------------


def test_csv_text_is_the_csv_module_with_newline_ends():
    rows = [{"a": 0.1, "b": None, "c": 'say "hi", twice'}, {"a": math.inf, "b": 7, "c": "x"}]
    assert csv_text(("a", "b", "c"), rows) == 'a,b,c\n0.1,,"say ""hi"", twice"\ninf,7,x\n'
    assert csv_text(("a",), []) == "a\n"
    with pytest.raises(ValueError, match=r"row lacks column\(s\) \['b'\]"):
        csv_text(("a", "b"), [{"a": 1}])
    with pytest.raises(ValueError, match="fields not in fieldnames"):
        csv_text(("a",), [{"a": 1, "z": 2}])


def test_write_csv_is_atomic(tmp_path):
    target = tmp_path / "t.csv"
    write_csv(target, ("a",), [{"a": 1}])
    with pytest.raises(ValueError):
        write_csv(target, ("a",), [{"a": 2}, {"b": 3}])
    assert target.read_text() == "a\n1\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_csv_writers_and_figure_savers_live_in_io():
    """Results are CSV through ``io.write_csv`` and figures through ``io.save_figure`` only.

    ``data/fixtures.py`` writes the Ravi CSV *input* format for tests, not a result.
    """
    found = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in {"writer", "DictWriter", "savefig"}:
                found.append(f"{name}:{node.attr}")
    assert sorted(set(found)) == ["data/fixtures.py:writer", "io.py:DictWriter", "io.py:savefig"]


def test_save_figure_writes_svg_and_png_at_the_dpi(tmp_path):
    import struct

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    plain = Figure(figsize=(2.0, 1.0))
    plain.add_subplot().plot([0, 1], [1, 0], label="series-a")
    paths = save_figure(plain, tmp_path, "plain", dpi=50, tight=False)
    assert paths == [tmp_path / "plain.svg", tmp_path / "plain.png"]
    png = paths[1].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (100, 50)
    assert 'width="144pt" height="72pt"' in paths[0].read_text()

    figure = plt.figure(figsize=(3.0, 2.0))
    figure.add_subplot().set_title("closed afterwards")
    save_figure(figure, tmp_path, "pyplot")
    assert figure.number not in plt.get_fignums()  # a pyplot figure is released
    assert "<!-- closed afterwards -->" in (tmp_path / "pyplot.svg").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png", "plain.svg", "pyplot.png", "pyplot.svg"]

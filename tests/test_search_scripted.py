"""The engine's removals pinned by a scripted measurer: which op each round removes from every edge and which
edges the edge stage removes, for both ``edge_origin`` values and both pairings.

The fake measurer's numbers depend only on the masks (additive per alive op and per alive edge), so every
expected removal below is worked out by hand in the comments, from the numbers, not by the engine's ranking.
Values are kept away from half-way cases of the 3-decimal rounding.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import run_search
from metantk_nas.search.trace import read_trace
from metantk_nas.space import PRIMITIVES, Genotype

SKIP, SEP, CONV = "skip_connect", "sep_conv_3x3", "conv_3x3"
CELLS = ("normal", "reduce")

#: Condition number = BASE + Σ E over alive edges + Σ V over alive ops; region count likewise with F and U.
V = {SKIP: 40.0, SEP: 20.0, CONV: 10.0}
U = {SKIP: 0, SEP: 30, CONV: 5}
V_SPECIAL = {("reduce", 2, CONV): 80.0}  # conv has the largest ΔC on reduce edge 2
E = {("normal", 2): 100.0, ("normal", 3): 30.0, ("normal", 4): 60.0,
     ("normal", 5): 43.5, ("normal", 6): 44.0, ("normal", 7): 10.0, ("normal", 8): 90.0}
F = {("normal", 5): 17, ("normal", 6): 28, ("normal", 7): 50, ("normal", 8): 6}
#: BASE + Σ E (all edges alive) = 1000, and the same for the regions: the op rounds see round numbers.
BASE = 1000.0 - sum(E.values())
R_BASE = 1000 - sum(F.values())


class ScriptedMeasurer:
    """Stands in for ``metantk_nas.search.measure.Measurer``; records every call.

    ``batch_groups`` kernel evaluations are asked for at once (``batch_candidates``; 0 here means 1): the
    numbers depend only on each request's masks, so the removals must not depend on it."""

    prefetch = False

    def __init__(self, cfg: SearchConfig, condition: str | None, train: Any, device: Any, *, algorithm: str | None,
                 others: tuple[str, ...]) -> None:
        assert others == ()
        self.condition = condition
        self.kernel_evaluations = self.region_evaluations = 0
        self.groups = cfg.batch_candidates or 1

    def batch_groups(self) -> int:
        return self.groups

    def prepare(self, requests: list) -> list:
        return [data_key for _, data_key, _ in requests]

    def condition_numbers(self, requests: list, prepared: list) -> list[float]:
        assert len(requests) <= max(self.groups, 3)  # a block asks for one batch (paired: 3 origins or fewer)
        assert prepared == [data_key for _, data_key, _ in requests]
        return [self.condition_number(*request) for request in requests]

    def init_supernet(self, key: int) -> None:
        pass

    def init_thin(self, key: int) -> None:
        pass

    @staticmethod
    def _alive(masks: dict) -> list[tuple[str, int, str]]:
        return [(cell, edge, PRIMITIVES[op]) for cell in CELLS for edge, row in enumerate(masks[cell].tolist())
                for op, alive in enumerate(row) if alive]

    def condition_number(self, masks: dict, data_key: int, head_key: int) -> float:
        self.kernel_evaluations += 1
        alive = self._alive(masks)
        edges = {(cell, edge) for cell, edge, _ in alive}
        return (BASE + sum(E.get(e, 0.0) for e in edges)
                + sum(V_SPECIAL.get(item, V[item[2]]) for item in alive))

    def region_inputs(self, data_key: int) -> int:
        return data_key

    def regions(self, masks: dict, inputs: int) -> int:
        self.region_evaluations += 1
        alive = self._alive(masks)
        edges = {(cell, edge) for cell, edge, _ in alive}
        return R_BASE + sum(F.get(e, 0) for e in edges) + sum(U[op] for _, _, op in alive)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    import metantk_nas.data.store
    import metantk_nas.search.measure

    monkeypatch.setattr(metantk_nas.search.measure, "Measurer", ScriptedMeasurer)
    monkeypatch.setattr(metantk_nas.data.store, "open_split",
                        lambda folder, split: SimpleNamespace(manifest={"files": {}, "counts": {}}))


def _removed(search: dict, stage: str) -> list[set[tuple[str, int, str]]]:
    return [{(r["cell"], r["edge"], r["op"]) for r in unit["removed"]}
            for unit in search["rounds"] if unit["stage"] == stage]


# Op round 0 (all of skip, sep, conv alive; c0 = 1000 + 17·70 + 140 = 2330, R0 = 1000 + 18·35 = 1630):
#   ΔC  skip 40/2330 → 0.017, sep 20/2330 → 0.009, conv 10/2330 → 0.004, reduce-e2 conv 80/2330 → 0.034
#       dense ranks (descending): e2 conv 0, skip 1, sep 2, conv 3
#   ΔR  skip 0 → 0.0, conv 5/1630 → 0.003, sep 30/1630 → 0.018; ranks (ascending): skip 0, conv 1, sep 2
#   scores: skip 1, sep 4, conv 4, reduce-e2 conv 1 — on reduce e2 conv ties skip and comes first in ΔC order.
ROUND_0 = {(c, e, SKIP) for c in CELLS for e in range(9)} - {("reduce", 2, SKIP)} | {("reduce", 2, CONV)}
# Op round 1 (sep, conv alive; reduce e2: skip, sep; c0 = 1000 + 17·30 + 60 = 1570, R0 = 1000 + 17·35 + 30 = 1625):
#   ΔC  sep 0.013, conv 0.006, e2 skip 0.025 → ranks e2 skip 0, sep 1, conv 2
#   ΔR  skip 0, conv 0.003, sep 0.018 → ranks skip 0, conv 1, sep 2
#   scores: sep 3 = conv 3 (sep first in ΔC order, so sep goes), e2 skip 0.
ROUND_1 = {(c, e, SEP) for c in CELLS for e in range(9)} - {("reduce", 2, SEP)} | {("reduce", 2, SKIP)}
# Edge stage (conv on every edge, sep on reduce e2; c0 = 1000 + 17·10 + 20 = 1190, R0 = 1000 + 17·5 + 30 = 1115):
#   normal node 3 (e2, e3, e4): ΔC (10+E)/1190 = 0.092, 0.034, 0.059, ΔR all 5/1115 → remove e2.
#   normal node 4 (e5..e8), x = 10+E = 53.5, 54, 20, 100; ΔR (5+F)/1110 = 0.020, 0.030, 0.050, 0.010
#     (ranks e8 0, e5 1, e6 2, e7 3).
#     fresh origin (c0 = 1190 − 110 = 1080): ΔC x/1080 = 0.050, 0.050, 0.019, 0.093 → ranks e8 0, e5 = e6 1, e7 2;
#       scores e8 0, e5 2, e6 3, e7 5 → remove e8, e5.
#     stale origin (c0 = 1190, candidates without e2): ΔC (110+x)/1190 = 0.137, 0.138, 0.109, 0.176
#       → ranks e8 0, e6 1, e5 2, e7 3; scores e8 0, e6 3, e5 3, e7 6; e6 first in ΔC order → remove e8, e6.
#   reduce node 3 (e2 sep, e3, e4 conv): ΔC e2 highest (fresh 0.022 vs 0.011, stale 0.239 vs 0.230),
#     ΔR e2 0.028 vs 0.005 → scores 1, 1, 1 → the first in ΔC order, e2, goes.
#   reduce node 4 (all conv, equal numbers): every rank 0 → the first two in enumeration order, e5 and e6.
EDGE_STAGE = {
    "fresh": {("normal", 2), ("normal", 8), ("normal", 5), ("reduce", 2), ("reduce", 5), ("reduce", 6)},
    "stale": {("normal", 2), ("normal", 8), ("normal", 6), ("reduce", 2), ("reduce", 5), ("reduce", 6)},
}
#: Candidates: 54 + 36 in the op rounds, 3 + 4 per cell type in the edge stage.
CANDIDATES = 54 + 36 + 14


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("pairing", ["official", "paired"])
@pytest.mark.parametrize("edge_origin", ["stale", "fresh"])
def test_scripted_removals(scripted: None, tmp_path: Path, pairing: str, edge_origin: str, batch: int) -> None:
    cfg = SearchConfig.from_dict({"method": "metantk-nas", "ops": [SKIP, SEP, CONV], "repeats": 1, "cells": 2,
                                  "pairing": pairing, "edge_origin": edge_origin, "device": "cpu",
                                  "batch_candidates": batch})
    genotype = run_search(cfg, tmp_path, tmp_path / "out", tmp_path / "work", progress=False)
    search = json.loads((tmp_path / "out" / "search.json").read_text())
    assert _removed(search, "ops") == [ROUND_0, ROUND_1]
    ((stage,),) = [[{(c, e) for c, e, _ in removed}] for removed in _removed(search, "edges")]
    assert stage == EDGE_STAGE[edge_origin]

    # the genotype is what survives: conv on the kept edges (node 4 keeps 4←1, 4←2 or 4←0, 4←2)
    node4 = {"fresh": ((CONV, 1), (CONV, 2)), "stale": ((CONV, 0), (CONV, 2))}[edge_origin]
    assert genotype == Genotype(
        normal=(((CONV, 0), (CONV, 1)), ((CONV, 1), (CONV, 2)), node4),
        reduce=(((CONV, 0), (CONV, 1)), ((CONV, 1), (CONV, 2)), ((CONV, 2), (CONV, 3))),
    )
    # the trace flags the same candidates
    rows = read_trace(tmp_path / "out" / "trace.csv")
    flagged = {(r["stage"], r["cell"], int(r["edge"]), r["op"]) for r in rows if r["removed"] == "1"}
    expected = ({("ops", *item) for item in ROUND_0 | ROUND_1}
                | {("edges", c, e, SEP if (c, e) == ("reduce", 2) else CONV) for c, e in EDGE_STAGE[edge_origin]})
    assert flagged == expected and len(rows) == CANDIDATES
    # official: origin and candidate measured per candidate; paired: the origin once per round (2) and group (4)
    origins = 2 * CANDIDATES if pairing == "official" else CANDIDATES + 2 + 4
    assert search["kernel_evaluations"] == origins and search["region_evaluations"] == origins

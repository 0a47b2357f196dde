"""Genotype parsing/validation, mask → genotype derivation (§4.5) and random cells."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from metantk_nas.space import (
    EDGES,
    PRIMITIVES,
    Genotype,
    genotype_from_masks,
    list_zoo,
    load_genotype,
    masks_from_genotype,
    random_genotype,
    zoo_entry,
)

OFFICIAL = load_genotype("metantk-nas/mini-5cell-1")

METANAS_MULTILINE = """Genotype(
    normal=[
        [("conv_3x3", 0), ("conv_3x3", 1)],
        [("conv_1x5_5x1", 0), ("dil_conv_3x3", 2)],
        [("conv_1x5_5x1", 0), ("max_pool_3x3", 3)],
    ],
    normal_concat=range(2, 5),
    reduce=[
        [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)],
        [("conv_3x3", 0), ("max_pool_3x3", 1)],
        [("dil_conv_3x3", 2), ("conv_1x5_5x1", 3)],
    ],
    reduce_concat=range(2, 5),
)"""


@pytest.mark.parametrize("name", list_zoo())
def test_zoo_round_trip(name: str) -> None:
    text = zoo_entry(name)["genotype"]
    genotype = Genotype.parse(text)
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype
    assert Genotype.parse(str(genotype)) == genotype
    if name.startswith("metantk-nas/"):
        assert str(genotype) == text  # the official string form is reproduced verbatim


def test_metanas_form_maps_pool_names() -> None:
    genotype = Genotype.parse(METANAS_MULTILINE)
    assert genotype == load_genotype("metanas/v1")
    assert genotype.normal[2] == (("conv_1x5_5x1", 0), ("max_pool_3x3BN", 3))
    assert "max_pool_3x3BN" in str(genotype) and "range" not in str(genotype)
    assert ("avg_pool_3x3BN", 0) in load_genotype("metanas/og-v2").normal[1]


def test_genotype_is_immutable_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        OFFICIAL.normal = OFFICIAL.reduce  # type: ignore[misc]
    assert len({OFFICIAL, load_genotype("metantk-nas/mini-5cell-1")}) == 1


def _variant(old: str, new: str) -> str:
    text = str(OFFICIAL)
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_variant("('conv_3x3', 0)", "('conv_9x9', 0)"), r"normal node 4 pair 0 .*unknown operation 'conv_9x9'"),
        (_variant("('conv_3x3', 0)", "('conv_3x3', 4)"), r"normal node 4 pair 0 .*input must be an integer in \[0, 3\]"),
        (_variant("('sep_conv_3x3', 2)]], normal", "('sep_conv_3x3', 0)]], normal"), "normal node 4: the two inputs must differ"),
        (_variant("('conv_3x3', 0)", "('conv_3x3', '0')"), "input must be an integer"),
        (_variant("normal_concat=[2, 3, 4]", "normal_concat=[2, 3, 4, 5]"), "normal_concat: expected"),
        (_variant("reduce_concat=[2, 3, 4]", "reduce_concat=range(2, 6)"), "reduce_concat: expected"),
        (_variant(", [('conv_3x3', 0), ('sep_conv_3x3', 2)]]", "]"), "normal: expected 3 nodes"),
        (_variant("[('conv_3x3', 0), ('sep_conv_3x3', 2)]", "[('conv_3x3', 0)]"), "normal node 4: expected 2"),
        (_variant(", reduce_concat=[2, 3, 4]", ""), "missing reduce_concat"),
        (_variant("normal=", "normal=__import__('os').getcwd(), x="), "not a literal value"),
        (_variant("normal_concat", "extra"), "unexpected argument"),
        ("Genotype(normal=[[('conv_3x3', 0), ('conv_3x3', 1)]", "must look like"),
        ("[('conv_3x3', 0)]", "must look like"),
    ],
)
def test_malformed_genotypes_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Genotype.parse(text)


def test_from_dict_errors() -> None:
    data = OFFICIAL.to_dict()
    data["reduce"][1][0] = ["none", 1]
    with pytest.raises(ValueError, match=r"reduce node 3 pair 0 .*unknown operation 'none'"):
        Genotype.from_dict(data)
    with pytest.raises(ValueError, match="unexpected keys"):
        Genotype.from_dict({**OFFICIAL.to_dict(), "name": "x"})
    with pytest.raises(ValueError, match="genotype JSON"):
        Genotype.from_json("{")


def test_load_genotype_from_files(tmp_path: Path) -> None:
    (tmp_path / "plain.json").write_text(OFFICIAL.to_json())
    (tmp_path / "wrapped.json").write_text(json.dumps({"genotype": OFFICIAL.to_dict(), "seed": 3}))
    (tmp_path / "string.json").write_text(json.dumps({"genotype": str(OFFICIAL)}))
    (tmp_path / "genotype.txt").write_text(str(OFFICIAL) + "\n")
    for name in ("plain.json", "wrapped.json", "string.json", "genotype.txt"):
        assert load_genotype(tmp_path / name) == OFFICIAL
    (tmp_path / "bad.json").write_text(json.dumps({"normal": []}))
    with pytest.raises(ValueError, match=r"bad\.json: genotype: missing"):
        load_genotype(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="neither a zoo architecture"):
        load_genotype("metantk-nas/mini-5cell-9")


@pytest.mark.parametrize("name", list_zoo())
def test_zoo_genotype_masks_round_trip(name: str) -> None:
    genotype = load_genotype(name)
    normal, reduce = masks_from_genotype(genotype)
    for mask, cell in ((normal, genotype.normal), (reduce, genotype.reduce)):
        assert mask.dtype == torch.bool and mask.shape == (9, 7)
        assert mask.sum(dim=1).tolist() == [int(any(source == EDGES[e][1] for _, source in cell[EDGES[e][0] - 2]))
                                            for e in range(9)]  # one op on each kept edge, none elsewhere
    assert genotype_from_masks(normal, reduce) == genotype


def test_random_genotype_masks_round_trip() -> None:
    for seed in range(200):
        genotype = random_genotype(seed)
        masks = masks_from_genotype(genotype)
        assert genotype_from_masks(*masks) == genotype
        assert all(torch.equal(a, b) for a, b in zip(masks_from_genotype(genotype_from_masks(*masks)), masks))


def test_genotype_from_partially_pruned_masks() -> None:
    normal = torch.ones(9, 7, dtype=torch.bool)
    reduce = torch.ones(9, 7, dtype=torch.bool)
    reduce[3, :] = False  # node 3: edge 3←1 removed
    reduce[4, :] = False
    reduce[4, PRIMITIVES.index("conv_3x3")] = True  # node 3: edge 3←2 has a single op (score 1)
    reduce[7, :2] = False  # node 4: edge 4←2 has 5 ops left (score 1/5 beats 1/7)
    reduce[8, :] = False
    reduce[8, 3:5] = True  # node 4: edge 4←3 has 2 ops (score 1/2), label = first alive
    genotype = genotype_from_masks(normal, reduce.numpy())
    first = PRIMITIVES[0]
    assert genotype.normal == (((first, 0), (first, 1)),) * 3  # all ties: smallest inputs, first op
    assert genotype.reduce == (
        ((first, 0), (first, 1)),
        ((first, 0), ("conv_3x3", 2)),
        (("dil_conv_3x3", 2), ("avg_pool_3x3BN", 3)),
    )
    with pytest.raises(ValueError, match=r"normal mask must have shape \(9, 7\)"):
        genotype_from_masks(torch.ones(9, 8, dtype=torch.bool), reduce)


def test_random_genotype_is_seeded_valid_and_uniform() -> None:
    assert random_genotype(7) == random_genotype(7)
    assert len({random_genotype(seed) for seed in range(20)}) == 20
    ops: Counter[str] = Counter()
    node4_inputs: Counter[tuple[int, int]] = Counter()
    for seed in range(300):
        genotype = random_genotype(seed)
        for cell in (genotype.normal, genotype.reduce):
            assert all(node[0][1] < node[1][1] for node in cell)
            ops.update(op for node in cell for op, _ in node)
            node4_inputs[(cell[2][0][1], cell[2][1][1])] += 1
    assert set(ops) == set(PRIMITIVES) and all(400 < count < 630 for count in ops.values())  # 3600 draws / 7
    assert len(node4_inputs) == 6 and all(60 < count < 140 for count in node4_inputs.values())  # 600 / 6

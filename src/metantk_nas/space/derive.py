"""Genotype derivation from pruning masks (§4.5, official ``NASNetworkDARTS.genotype``)."""

from __future__ import annotations

from collections.abc import Sequence

from metantk_nas.space.genotype import Genotype
from metantk_nas.space.primitives import EDGES, MASK_SHAPE, NODE_GROUPS, PRIMITIVES

#: Softmax weight of every column of an all-removed edge: the 8 official columns (incl. ``none``) are equal.
_DEAD_EDGE_SCORE = 1.0 / (len(PRIMITIVES) + 1)


def _rows(name: str, mask) -> list[list[bool]]:
    rows = mask.tolist() if hasattr(mask, "tolist") else [list(row) for row in mask]
    if len(rows) != MASK_SHAPE[0] or any(len(row) != MASK_SHAPE[1] for row in rows):
        raise ValueError(f"{name} mask must have shape {MASK_SHAPE} (edges × ops)")
    if any(not isinstance(value, bool) for row in rows for value in row):
        raise ValueError(f"{name} mask must hold booleans (True = alive)")
    return rows


def _cell(rows: Sequence[Sequence[bool]]) -> list[list[tuple[str, int]]]:
    cell = []
    for start, stop in NODE_GROUPS:
        scored = []
        for index in range(start, stop):
            alive = [i for i, flag in enumerate(rows[index]) if flag]
            # softmax over (none=-1000, alive=0, removed=-1000): max weight 1/k, argmax = first alive
            score = 1.0 / len(alive) if alive else _DEAD_EDGE_SCORE
            op = PRIMITIVES[alive[0]] if alive else PRIMITIVES[0]
            scored.append((score, EDGES[index][1], op))
        kept = sorted(scored, key=lambda item: -item[0])[:2]  # stable: ties keep the smaller input
        cell.append([(op, source) for _, source, op in sorted(kept, key=lambda item: item[1])])
    return cell


def genotype_from_masks(normal, reduce) -> Genotype:
    """Derive the genotype the official parser reads off the pruned architecture parameters.

    Per node the 2 incoming edges with the largest max-softmax weight are kept (1/k for an edge with
    k alive ops, 1/8 for an all-removed edge; ties go to the smaller input index) and each is labelled
    with its first alive op in PRIMITIVES order. After complete pruning (one op per edge, two alive
    edges per node) this is exactly "the surviving edges with their op". As in the official code, a
    node left with fewer than two alive edges gets a removed edge labelled with the first primitive.
    """
    return Genotype(normal=_cell(_rows("normal", normal)), reduce=_cell(_rows("reduce", reduce)))

"""Genotype ↔ pruning masks, both directions in one place (§4.5, official ``NASNetworkDARTS.genotype``).

A mask is a (9, 7) bool matrix per cell type (``True`` = alive; rows in :data:`EDGES` order, columns in
:data:`PRIMITIVES` order). :func:`masks_from_genotype` keeps exactly a genotype's (op, input) pairs, and
:func:`genotype_from_masks` is the official parser; one is the inverse of the other for every genotype whose
nodes list their inputs in ascending order (the official parser's output, every zoo and random cell).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metantk_nas.space.genotype import Cell, Genotype
from metantk_nas.space.primitives import EDGES, MASK_SHAPE, NODE_GROUPS, PRIMITIVES

#: Softmax weight of every column of an all-removed edge: the 8 official columns (incl. ``none``) are equal.
_DEAD_EDGE_SCORE = 1.0 / (len(PRIMITIVES) + 1)


def _mask_rows(name: str, mask: Any) -> list[list[bool]]:
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


def genotype_from_masks(normal: Any, reduce: Any) -> Genotype:
    """Derive the genotype the official parser reads off the pruned architecture parameters.

    Per node the 2 incoming edges with the largest max-softmax weight are kept (1/k for an edge with
    k alive ops, 1/8 for an all-removed edge; ties go to the smaller input index) and each is labelled
    with its first alive op in PRIMITIVES order. After complete pruning (one op per edge, two alive
    edges per node) this is exactly "the surviving edges with their op". As in the official code, a
    node left with fewer than two alive edges gets a removed edge labelled with the first primitive.
    """
    return Genotype(normal=_cell(_mask_rows("normal", normal)), reduce=_cell(_mask_rows("reduce", reduce)))


def _cell_mask(cell: Cell) -> Any:
    import torch

    mask = torch.zeros(MASK_SHAPE, dtype=torch.bool)
    for offset, pairs in enumerate(cell):
        for op, source in pairs:
            mask[EDGES.index((offset + 2, source)), PRIMITIVES.index(op)] = True
    return mask


def masks_from_genotype(genotype: Genotype) -> tuple[Any, Any]:
    """(normal, reduce) (9, 7) ``torch.bool`` masks keeping exactly the genotype's (op, input) pairs.

    The supernet with these masks computes the genotype's cells (up to the 1/k mixing weights, all 1 here,
    and the search network's norms); :func:`genotype_from_masks` reads the genotype back.
    """
    return _cell_mask(genotype.normal), _cell_mask(genotype.reduce)

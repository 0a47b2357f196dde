"""Uniformly random cells: the random-search baseline (official ``random_baseline.py``)."""

from __future__ import annotations

import numpy as np

from metantk_nas.space.genotype import Genotype
from metantk_nas.space.primitives import PRIMITIVES, STEPS


def random_genotype(seed: int) -> Genotype:
    """Each node draws 2 distinct inputs uniformly and a uniform op for each; pairs in ascending input order."""
    rng = np.random.default_rng(seed)
    cells = []
    for _ in ("normal", "reduce"):
        cell = []
        for node in range(2, 2 + STEPS):
            inputs = sorted(int(i) for i in rng.choice(node, size=2, replace=False))
            ops = rng.integers(len(PRIMITIVES), size=2)
            cell.append([(PRIMITIVES[int(op)], source) for op, source in zip(ops, inputs)])
        cells.append(cell)
    return Genotype(normal=cells[0], reduce=cells[1])

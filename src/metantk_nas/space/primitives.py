"""Names of the ``darts_fewshot`` search space, kept torch-free so the CLI and the genotype type can use them.

The column order is the official one (§1.1, columns 1..7; column 0 ``none`` is masked from
the start and therefore only exists as an all-``False`` mask column here).
"""

from __future__ import annotations

#: The 7 searchable operations, in the official column order of every mask.
PRIMITIVES: tuple[str, ...] = (
    "skip_connect",
    "sep_conv_3x3",
    "dil_conv_3x3",
    "avg_pool_3x3BN",
    "max_pool_3x3BN",
    "conv_1x5_5x1",
    "conv_3x3",
)

#: The 9 supernet edges ``(target node, input node)`` in the official (lexicographic key) order.
EDGES: tuple[tuple[int, int], ...] = ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 0), (4, 1), (4, 2), (4, 3))

#: Edge index ranges ``[start, stop)`` of the intermediate nodes 2, 3, 4.
NODE_GROUPS: tuple[tuple[int, int], ...] = ((0, 2), (2, 5), (5, 9))

#: Intermediate nodes per cell and the states concatenated into the cell output.
STEPS = 3
CONCAT: tuple[int, ...] = (2, 3, 4)

#: MetaNAS spells the pool+BN operations without the ``BN`` suffix.
OP_ALIASES: dict[str, str] = {"max_pool_3x3": "max_pool_3x3BN", "avg_pool_3x3": "avg_pool_3x3BN"}

MASK_SHAPE: tuple[int, int] = (len(EDGES), len(PRIMITIVES))


def canonical_op(name: str) -> str:
    """Map a MetaNAS operation name onto ours (pool names gain ``BN``); other names pass unchanged."""
    return OP_ALIASES.get(name, name)

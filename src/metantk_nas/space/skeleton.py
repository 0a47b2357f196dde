"""The macro skeleton shared by the search supernet and the final network: where the reduction cells go.

One formula for both networks (official §1.3 and §1.5): with L cells, the reduction cells sit at
⌊L/3⌋ and ⌊2L/3⌋ and the cell width doubles at each. For the supernet's depths L = 3N+2 these are the
positions N and 2N+1 of its "N normal, reduction, N normal, reduction, N normal" plan.
"""

from __future__ import annotations


def reduction_cells(n_cells: int) -> tuple[int, int]:
    """Official reduction positions ⌊L/3⌋ and ⌊2L/3⌋ (5 → 1, 3; 8 → 2, 5)."""
    if n_cells < 3:
        raise ValueError(f"n_cells must be at least 3 for two reduction cells, got {n_cells}")
    return n_cells // 3, 2 * n_cells // 3


def cell_plan(n_cells: int) -> list[tuple[int, bool]]:
    """Per cell ``(channel multiplier, is_reduction)``: the multiplier doubles at every reduction cell."""
    reductions = reduction_cells(n_cells)
    plan, multiplier = [], 1
    for index in range(n_cells):
        reduction = index in reductions
        multiplier *= 2 if reduction else 1
        plan.append((multiplier, reduction))
    return plan

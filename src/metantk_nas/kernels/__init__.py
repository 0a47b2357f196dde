"""Empirical NTK, MetaNTK assembly, condition numbers and the search's kernel scores.

Names are imported lazily so that ``metantk-nas --help`` (which imports ``kernels.cli``) does not pay
for importing torch.
"""

from __future__ import annotations

from metantk_nas._lazy import lazy_getattr

_EXPORTS = {
    "NTKResult": "ntk",
    "NtkBackend": "ntk",
    "empirical_ntk": "ntk",
    "grouped_empirical_ntk": "ntk",
    "GroupedLinear": "_gram",
    "TaskLayout": "metantk",
    "meta_ntk": "metantk",
    "ConditionNumber": "condition",
    "DEGENERATE_CONDITION": "condition",
    "condition_number": "condition",
    "make_head": "score",
    "metantk_condition": "score",
    "metantk_conditions": "score",
    "ntk_condition": "score",
    "ntk_conditions": "score",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

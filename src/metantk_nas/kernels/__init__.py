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
    "TaskLayout": "metantk",
    "meta_ntk": "metantk",
    "ConditionNumber": "condition",
    "DEGENERATE_CONDITION": "condition",
    "condition_number": "condition",
    "make_head": "score",
    "metantk_condition": "score",
    "ntk_condition": "score",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

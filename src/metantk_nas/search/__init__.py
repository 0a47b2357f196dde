"""The training-free search: MetaNTK-NAS (Algorithm 1) and its baselines as configurations of one engine.

Names are imported lazily so that ``metantk-nas --help`` does not import torch.
"""

from __future__ import annotations

from metantk_nas._lazy import lazy_getattr

_EXPORTS = {
    "SearchConfig": "config",
    "METHODS": "methods",
    "Method": "methods",
    "get_method": "methods",
    "table_methods": "methods",
    "TABLES": "methods",
    "paper_settings": "methods",
    "rank_candidates": "ranking",
    "round_to": "ranking",
    "run_search": "engine",
    "default_work_dir": "engine",
    "read_trace": "trace",
    "TRACE_COLUMNS": "trace",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

"""Search space, networks and published architectures of MetaNTK-NAS.

Names are imported lazily so that torch-free users (the CLI, genotype handling) do not pay for
importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRIMITIVES": "primitives",
    "EDGES": "primitives",
    "NODE_GROUPS": "primitives",
    "Genotype": "genotype",
    "load_genotype": "zoo",
    "list_zoo": "zoo",
    "zoo_entry": "zoo",
    "register_op": "ops",
    "create_op": "ops",
    "SearchSupernet": "supernet",
    "build_thin_network": "supernet",
    "all_alive_mask": "supernet",
    "genotype_from_masks": "derive",
    "FinalNetwork": "final",
    "count_parameters": "final",
    "random_genotype": "sampling",
    "draw_genotype": "draw",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

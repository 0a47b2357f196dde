"""Search space, networks and published architectures of MetaNTK-NAS.

Names are imported lazily so that torch-free users (the CLI, genotype handling) do not pay for
importing torch.
"""

from __future__ import annotations

from metantk_nas._lazy import lazy_getattr

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
    "masks_from_genotype": "derive",
    "FinalNetwork": "final",
    "count_parameters": "final",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "random_genotype": "sampling",
    "draw_genotype": "draw",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

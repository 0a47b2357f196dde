"""Training-free proxies: the registry of every proxy (``PROXIES``, ``get_proxy``), the linear-region count of
the thin network and the standard zero-cost proxies (the kernels' condition numbers live in ``kernels``).

Names are imported lazily, so that reading the registry (the command line, the workflow) does not import
torch. The function ``linear_regions`` is imported from its module, ``proxies.linear_regions`` (a package
attribute cannot be both the submodule and the function).
"""

from __future__ import annotations

from metantk_nas._lazy import lazy_getattr

_EXPORTS = {
    "NETWORKS": "registry",
    "INPUTS": "registry",
    "PROXIES": "registry",
    "Proxy": "registry",
    "get_proxy": "registry",
    "activation_codes": "linear_regions",
    "region_inputs": "linear_regions",
    "shuffled_batches": "linear_regions",
    "flops": "zero_cost",
    "grad_norm": "zero_cost",
    "jacob_cov": "zero_cost",
    "naswot": "zero_cost",
    "params": "zero_cost",
    "snip": "zero_cost",
    "synflow": "zero_cost",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)

"""Every proxy of one architecture, measured as the search sees it: its cell's masks on the search supernet.

An architecture is scored at the search's settings (supernet C and cells, resolution, tasks, λτ, ρ, region
batches, ...): the condition numbers and the zero-cost proxies on the search supernet with only the
genotype's (op, input) pairs alive, linear regions on the thin network with the same masks. Proxy seed ``s``
draws the weights, tasks, heads and images from keys derived from ``(search seed, "study", s)``: the same
draws for every architecture (architectures are compared on equal terms), a fresh draw per seed (the
spread over seeds is the proxy's own noise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

#: Columns of a scores file (one row per architecture × proxy × seed): what ``study.summary`` reads.
SCORE_COLUMNS = ("architecture", "proxy", "seed", "score", "seconds")


def score_architecture(architecture: str, genotype: Any, cfg: Any, train: Any, proxies: Sequence[str], seeds: int,
                       device: Any) -> list[dict[str, Any]]:
    """Rows of :data:`SCORE_COLUMNS`: every proxy of ``proxies`` (registry names) of ``genotype`` for seeds
    0..``seeds``−1, with the seconds of each evaluation (its inputs included).

    Args:
        architecture: the name written in the rows.
        genotype: the cell (``space.Genotype``).
        cfg: the search settings (``SearchConfig``) the supernet, inputs and kernels follow.
        train: the split the tasks and images come from (``data.store.Split``; the search's: train).
        proxies: registry names, each measured once per seed.
        seeds: proxy seeds per architecture.
        device: where the networks run.
    """
    from metantk_nas.search.engine import LINEAR_REGIONS, ProxyPlan
    from metantk_nas.search.measure import Measurer
    from metantk_nas.seeding import derive_seed
    from metantk_nas.space import masks_from_genotype

    masks = dict(zip(("normal", "reduce"), masks_from_genotype(genotype), strict=True))
    others = ProxyPlan(tuple(proxies)).others  # the zero-cost proxies share one supernet
    shared = Measurer(cfg, None, train, device, others=others)
    measurers: dict[str, Measurer] = {}
    for name in proxies:
        if name in others or name == LINEAR_REGIONS:
            measurers[name] = shared
        else:  # a condition number: its own supernet (MetaNTK MAML/ANIL or NTK) and batch
            options = ProxyPlan((name,)).measurer_options()
            measurers[name] = Measurer(cfg, options.pop("condition"), train, device, **options)
    rows = []
    for seed in range(seeds):
        key = derive_seed(cfg.seed, "study", seed)
        data, head = derive_seed(key, "data"), derive_seed(key, "head")
        for name in proxies:
            measurer = measurers[name]
            measurer.init_supernet(derive_seed(key, "weights"))  # every proxy scores the same weights
            start = time.perf_counter()
            if name == LINEAR_REGIONS:
                measurer.init_thin(derive_seed(key, "thin"))
                value: float = measurer.regions(masks, measurer.region_inputs(data))
            elif name in others:
                value = measurer.proxy_value(name, masks, data)
            else:
                value = measurer.condition_number(masks, data, head)
            rows.append({"architecture": architecture, "proxy": name, "seed": seed, "score": float(value),
                         "seconds": time.perf_counter() - start})
    return rows

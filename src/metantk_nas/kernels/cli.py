"""``metantk-nas kernel``: one MetaNTK / NTK condition number of a supernet or genotype, as JSON."""

from __future__ import annotations

import argparse
import json
import math

KERNELS = ("metantk-maml", "metantk-anil", "ntk")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``kernel``."""
    parser = subparsers.add_parser(
        "kernel",
        help="condition number of the MetaNTK/NTK of a network on one batch of tasks",
        description="Print the condition number, a spectrum summary and the timing of one kernel evaluation as JSON.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--genotype", help="zoo name or JSON file: keep only this genotype's ops/edges in the supernet")
    which.add_argument("--supernet", action="store_true", help="the full supernet, all 7 ops alive on every edge")
    parser.add_argument("--dataset", required=True, help="prepared store folder (metantk-nas prepare)")
    parser.add_argument("--kernel", required=True, choices=KERNELS)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--lam-tau", type=float, default=math.inf, help="λτ; inf or >= 1000 drops the exponential")
    parser.add_argument("--reg", type=float, default=1e-3, help="ρ added inside the pseudo-inverse")
    parser.add_argument("--output", choices=("sum", "logits"), default="sum")
    parser.add_argument("--backend", choices=("auto", "gram", "loop", "opacus", "func"), default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tasks", type=int, default=3, help="tasks per MetaNTK batch (official dartsbs)")
    parser.add_argument("--images", type=int, default=30, help="images for --kernel ntk")
    parser.add_argument("--split", default="train")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from metantk_nas.data.episodes import TaskSampler
    from metantk_nas.data.store import open_split
    from metantk_nas.data.transforms import search_transform
    from metantk_nas.device import select_device
    from metantk_nas.io import to_jsonable
    from metantk_nas.kernels.score import make_head, metantk_condition, ntk_condition
    from metantk_nas.provenance import collect
    from metantk_nas.seeding import derive_seed, seed_everything
    from metantk_nas.space import SearchSupernet, load_genotype, masks_from_genotype

    if args.cells < 2 or args.channels < 1 or args.tasks < 1 or args.images < 2:
        raise ValueError("--cells must be >= 2, --channels/--tasks >= 1 and --images >= 2")
    device = select_device(args.device)
    seed_everything(args.seed)
    split = open_split(args.dataset, args.split)
    model = SearchSupernet(C=args.channels, n_cells=args.cells, num_classes=split.num_classes, norm="group")
    if args.genotype:
        model.set_masks(*masks_from_genotype(load_genotype(args.genotype)))
    model = model.to(device).train()
    data_gen = torch.Generator().manual_seed(derive_seed(args.seed, "kernel-data"))

    start = time.perf_counter()
    if args.kernel == "ntk":
        index = np.sort(torch.randperm(len(split.labels), generator=data_gen)[: args.images].numpy())
        images = search_transform(split.images[index], True, data_gen, device=device)
        cond = ntk_condition(model, images, output=args.output, backend=args.backend)
    else:
        sampler = TaskSampler(split.labels, n_way=5, n_shot=1, n_query=1, seed=args.seed)
        tasks = [sampler.task(i) for i in range(args.tasks)]

        def stack(which: str, augment: bool) -> torch.Tensor:
            batch = [search_transform(split.images[np.asarray(getattr(t, which))], augment, data_gen, device=device) for t in tasks]
            return torch.stack(batch)

        query, support = stack("query", False), stack("support", True)
        head = make_head(model.num_features, 5, torch.Generator().manual_seed(derive_seed(args.seed, "head")), device)
        cond = metantk_condition(
            model, query, support, head=head, algorithm=args.kernel.split("-")[1], lam_tau=args.lam_tau,
            reg=args.reg, output=args.output, backend=args.backend,
        )
    seconds = time.perf_counter() - start
    config = {k: v for k, v in vars(args).items() if k != "func"}
    payload = {**cond.summary(), "eigenvalues": cond.eigenvalues, "seconds": seconds, "config": config,
               "provenance": collect(config, args.seed)}
    print(json.dumps(to_jsonable(payload), indent=2))
    return 0

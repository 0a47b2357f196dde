"""CLI of metantk_nas.theory: ``theory`` measures Theorems 1 and 2 over a range of widths."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``theory``. Every size flag defaults to "not given": the config file, then built-in defaults apply."""
    parser = subparsers.add_parser(
        "theory", help="measure MAML's linear convergence (Theorem 1) and its MetaNTK kernel regression (Theorem 2)")
    parser.add_argument("--dataset", type=Path, required=True, help="prepared store (train and test splits are used)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (CSV, figures, summary.md, theory.json)")
    parser.add_argument("--config", type=Path, help="YAML mapping of settings (keys as the long flags, with _)")
    parser.add_argument("--widths", type=int, nargs="+", help="hidden widths, increasing (default 64 256 1024 4096)")
    parser.add_argument("--depth", type=int, help="hidden layers (default 1)")
    parser.add_argument("--activation", choices=("tanh", "relu"), help="default tanh (smooth, as Lemma 1 needs)")
    parser.add_argument("--tasks", type=int, help="training tasks (default 5)")
    parser.add_argument("--test-tasks", type=int, help="held-out tasks from the test classes (default 20)")
    parser.add_argument("--ways", type=int, help="default 5")
    parser.add_argument("--shots", type=int, help="default 1")
    parser.add_argument("--queries", type=int, help="queries per class (default 1)")
    parser.add_argument("--inner-steps", type=int, help="inner gradient steps k (default 1)")
    parser.add_argument("--inner-lr", type=float,
                        help="inner rate as a fraction of 1/max lambda_max(Theta(X',X')) (default 1.0)")
    parser.add_argument("--outer-lr", type=float,
                        help="outer rate as a fraction of 2/(sigma_max(Phi)+sigma_min(Phi)) (default 0.9)")
    parser.add_argument("--steps", type=int, help="outer gradient steps (default 100)")
    parser.add_argument("--checkpoints", type=int, help="movement checkpoints after step 0 (default 2)")
    parser.add_argument("--jacobian-probes", type=int, help="0 = exact ||J_t-J_0||, else Hutchinson probes (default 8)")
    parser.add_argument("--image-size", type=int, help="images are resized to this side (default 32)")
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.set_defaults(func=_theory)


_KEYS = ("widths", "depth", "activation", "tasks", "test_tasks", "ways", "shots", "queries", "inner_steps",
         "inner_lr", "outer_lr", "steps", "checkpoints", "jacobian_probes", "image_size", "seed", "device")


def build_config(args: argparse.Namespace):
    """The :class:`TheoryConfig` a ``theory`` command line resolves to (config file, then flags)."""
    from metantk_nas.theory.config import load_config

    return load_config(args.config, {key: getattr(args, key) for key in _KEYS})


def _theory(args: argparse.Namespace) -> int:
    import contextlib

    from metantk_nas.device import claim_gpu, select_device
    from metantk_nas.theory.outputs import run_and_write

    config = build_config(args)
    claim = claim_gpu() if config.device != "cpu" else contextlib.nullcontext()
    with claim:
        device = select_device(config.device)
        run_and_write(config, args.dataset, args.out, device)
    print(f"wrote {args.out}")
    return 0

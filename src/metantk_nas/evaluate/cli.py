"""``metantk-nas evaluate``: few-shot evaluation of a trained model (see ``metantk_nas.evaluate.fewshot``)."""

from __future__ import annotations

import argparse

from metantk_nas.evaluate.config import EvalConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``evaluate``."""
    parser = subparsers.add_parser("evaluate", help="few-shot evaluation of a trained model (Paper §6.1)",
                                   description="Evaluate N-way K-shot test tasks; writes OUT/{k}shot.json.")
    parser.add_argument("--model", required=True, help="model.pt written by 'metantk-nas train'")
    parser.add_argument("--dataset", required=True, help="prepared store directory (its test split is used)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None,
                        help="settings file (YAML or JSON) with EvalConfig keys (an 'evaluate' section or flat)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    EvalConfig.add_arguments(parser)
    parser.set_defaults(func=_run)


def build_config(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` an ``evaluate`` command line resolves to (settings file, then flags)."""
    return EvalConfig.from_args(args)


def _run(args: argparse.Namespace) -> int:
    from metantk_nas.evaluate.fewshot import evaluate
    from metantk_nas.io import output_folder

    cfg = build_config(args)
    with output_folder(args.out, wait=args.wait, files=[f"{shot}shot.json" for shot in cfg.shots]):
        results = evaluate(cfg, args.model, args.dataset, args.out, progress=not args.no_progress)
    for shot, result in results.items():
        print(f"{shot}-shot: {100 * result['mean']:.2f} ± {100 * result['ci95']:.2f} % "
              f"({result['classifier']}, C={result['C']}, {result['n_tasks']} tasks)")
    return 0

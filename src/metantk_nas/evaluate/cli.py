"""``metantk-nas evaluate``: few-shot evaluation of a trained model (see ``metantk_nas.evaluate.fewshot``)."""

from __future__ import annotations

import argparse

#: CLI flag → EvalConfig key.
_OVERRIDES = {"shots": "shots", "tasks": "tasks", "queries": "queries", "n_aug": "n_aug", "classifier": "classifier",
              "C": "C", "backend": "backend", "seed": "seed", "device": "device", "batch_size": "batch_size",
              "n_jobs": "n_jobs"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``evaluate``."""
    parser = subparsers.add_parser("evaluate", help="few-shot evaluation of a trained model (Paper §6.1)",
                                   description="Evaluate N-way K-shot test tasks; writes OUT/{k}shot.json.")
    parser.add_argument("--model", required=True, help="model.pt written by 'metantk-nas train'")
    parser.add_argument("--dataset", required=True, help="prepared store directory (its test split is used)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=None, help="YAML file with EvalConfig keys (an 'evaluate' section or flat)")
    parser.add_argument("--shots", type=int, nargs="+")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--queries", type=int, help="queries per class (default 50)")
    parser.add_argument("--n-aug", type=int, help="augmented copies per support image (default 5)")
    parser.add_argument("--classifier", choices=("lr", "svc"))
    parser.add_argument("--C", type=float, help="inverse L2 strength for every shot")
    parser.add_argument("--C-1shot", type=float, dest="C_1shot", help="C for 1-shot tasks")
    parser.add_argument("--C-5shot", type=float, dest="C_5shot", help="C for 5-shot tasks")
    parser.add_argument("--backend", choices=("torch", "sklearn"), help="logistic-regression solver")
    parser.add_argument("--n-jobs", type=int, help="parallel scikit-learn tasks (default all cores)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch-size", type=int, help="images per forward pass")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast for the features (CUDA, or a CPU with native bf16)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
    parser.set_defaults(func=_run)


def build_config(args: argparse.Namespace):
    """The :class:`EvalConfig` an ``evaluate`` command line resolves to (config file, then flags)."""
    from metantk_nas.evaluate.config import EvalConfig
    from metantk_nas.io import read_yaml_section

    values = read_yaml_section(args.config, "evaluate") if args.config else {}
    for flag, key in _OVERRIDES.items():
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    per_shot = dict(values.get("C_per_shot") or {})
    for shot, value in ((1, args.C_1shot), (5, args.C_5shot)):
        if value is not None:
            per_shot[shot] = value
    if per_shot:
        values["C_per_shot"] = per_shot
    if args.amp:
        values["amp"] = True
    return EvalConfig.from_dict(values, source=args.config or "evaluate options")


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

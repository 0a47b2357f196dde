"""``metantk-nas baseline train|evaluate ALGORITHM``: the Table 1 baselines (MAML, ANIL, MetaOptNet, RFS)."""

from __future__ import annotations

import argparse
from typing import Any

from metantk_nas.baselines.algorithms import ALGORITHMS, get_algorithm
from metantk_nas.baselines.config import CONFIGS
from metantk_nas.evaluate.config import EvalConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``baseline train ALGORITHM`` and ``baseline evaluate ALGORITHM``."""
    parser = subparsers.add_parser("baseline", help="train and evaluate the Table 1 baselines",
                                   description="The paper's Table 1 baselines, each at its original paper's settings.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a baseline (meta-training, or RFS pre-training)")
    train_algorithms = train.add_subparsers(dest="algorithm", metavar="ALGORITHM", required=True)
    evaluate = actions.add_parser("evaluate", help="evaluate a baseline with its own protocol (the linear probe "
                                                   "of every model: metantk-nas evaluate)")
    evaluate_algorithms = evaluate.add_subparsers(dest="algorithm", metavar="ALGORITHM", required=True)
    for name, algorithm in ALGORITHMS.items():
        cls = CONFIGS[name]
        sub = train_algorithms.add_parser(name, help=algorithm.summary,
                                          description=f"{algorithm.summary}. Writes OUT/model.pt, metrics.csv, "
                                                      "train.json.")
        sub.add_argument("--dataset", required=True, help="prepared store directory (its train split is used)")
        sub.add_argument("--out", required=True, help="output directory")
        sub.add_argument("--work", default=None, help="checkpoint directory (default OUT/work); resumed if present")
        if algorithm.per_shot:
            sub.add_argument("--shot", type=int, required=True, choices=(1, 5),
                             help="the shot setting this model is trained (and later evaluated) for")
        sub.add_argument("--config", default=None,
                         help=f"settings file (YAML or JSON) with {cls.__name__} keys (a '{cls.section}' section or flat)")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
        cls.add_arguments(sub)
        sub.set_defaults(func=_train, settings_class=cls)
        if algorithm.protocol == "probe":
            continue
        sub = evaluate_algorithms.add_parser(name, help=f"{algorithm.label}'s own test protocol")
        sub.add_argument("--model", required=True, help="model.pt written by `baseline train`")
        sub.add_argument("--dataset", required=True, help="prepared store directory")
        sub.add_argument("--out", required=True, help="output directory (receives {k}shot.json)")
        sub.add_argument("--config", default=None,
                         help=f"settings file with an 'evaluate' section (EvalConfig keys) and a '{cls.section}' "
                              f"section ({cls.__name__} keys: the test-time settings)")
        sub.add_argument("--wait", action="store_true", help="wait for another process writing --out instead of refusing")
        EvalConfig.add_arguments(sub)
        sub.set_defaults(func=_evaluate, settings_class=cls)


def build_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a ``baseline train|evaluate`` command line resolves to, as its job's settings file holds them."""
    if args.action == "train":
        return args.settings_class.from_args(args).to_dict()
    cfg, algo_cfg = _evaluate_configs(args)
    return {"evaluate": cfg.to_dict(), algo_cfg.section: algo_cfg.to_dict()}


def _evaluate_configs(args: argparse.Namespace) -> tuple[EvalConfig, Any]:
    """The evaluation's settings (file, then flags) and the algorithm's test-time settings (file)."""
    from metantk_nas.io import read_settings_section

    cls = args.settings_class
    algo_values = read_settings_section(args.config, cls.section) if args.config else {}
    return EvalConfig.from_args(args), cls.from_dict(algo_values, source=str(args.config) if args.config else "defaults")


def _train(args: argparse.Namespace) -> int:
    from metantk_nas.io import output_folder

    algorithm = get_algorithm(args.algorithm)
    cfg = args.settings_class.from_args(args)
    with output_folder(args.out, wait=args.wait):
        if algorithm.training == "supervised":
            from metantk_nas.space.backbones import BackboneSpec
            from metantk_nas.train.loop import train

            spec = BackboneSpec(algorithm.backbone, cfg.width, cfg.drop_rate)
            model_path = train(cfg, spec, args.dataset, args.out, args.work, progress=not args.no_progress)
        else:
            from metantk_nas.baselines.episodic import meta_train

            model_path = meta_train(algorithm, cfg, args.dataset, args.out, args.work, shot=getattr(args, "shot", None),
                                    progress=not args.no_progress)
    print(model_path)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from metantk_nas.baselines.protocols import evaluate_protocol
    from metantk_nas.io import output_folder

    algorithm = get_algorithm(args.algorithm)
    cfg, algo_cfg = _evaluate_configs(args)
    files = [f"{shot}shot.json" for shot in cfg.shots]
    with output_folder(args.out, wait=args.wait, files=files):
        results = evaluate_protocol(algorithm, cfg, algo_cfg, args.model, args.dataset, args.out)
    for shot, result in results.items():
        print(f"{algorithm.name} {shot}-shot: {100 * result['mean']:.2f} ± {100 * result['ci95']:.2f} %")
    return 0

"""Benchmark: the fast few-shot evaluation against a straightforward per-task implementation.

    python benchmarks/evaluate.py --model OUT/model.pt --dataset STORE --tasks 1000 --shots 1 5 --out bench.json

Both sides use the same trained model, the same tasks (seeded) and the same augmented supports
(each task's augmentation generator depends only on (seed, shot, task)). The straightforward side is
what a per-task loop does: the trained network in eval mode under ``torch.no_grad``, one forward pass
of each task's supports and queries (channels_last, the faster layout on CPU and GPU alike), scikit-learn ``LogisticRegression`` per task (the official
``meta_test`` settings). The fast side (``metantk_nas.evaluate``) computes every query feature once,
forwards only the supports through a BatchNorm-folded copy of the network, and solves all logistic
regressions at once; it is timed in float32 and with bf16 autocast. Its time includes building the
inference copy and the whole query bank, for every shot setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from metantk_nas import provenance
from metantk_nas.data.episodes import TaskSampler
from metantk_nas.data.store import open_split
from metantk_nas.data.transforms import normalize, to_tensor
from metantk_nas.device import select_device
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.evaluate.features import FeatureExtractor, augmented_supports, support_generator
from metantk_nas.evaluate.fewshot import evaluate_shot
from metantk_nas.io import write_json
from metantk_nas.train.batches import gather
from metantk_nas.space.checkpoint import load_model


def per_task(cfg: EvalConfig, shot: int, model: torch.nn.Module, normalization: dict, images: np.ndarray,
             labels: np.ndarray, padding: int, device: torch.device) -> tuple[list[float], float]:
    """The straightforward loop: forward supports + queries of each task, fit scikit-learn per task."""
    from sklearn.linear_model import LogisticRegression

    sampler = TaskSampler(labels, cfg.n_way, shot, cfg.queries, cfg.seed)
    model.eval()
    accuracies = []
    started = time.perf_counter()
    for index in range(cfg.tasks):
        task = sampler.task(index)
        support = augmented_supports(images, task.support, cfg.n_aug, support_generator(cfg.seed, shot, index, device),
                                     device, padding)
        both = torch.cat([support, to_tensor(gather(images, task.query), device)])
        both = both.contiguous(memory_format=torch.channels_last)  # the faster layout, as on the fast side
        with torch.no_grad():
            features = model.forward_features(normalize(both, normalization["mean"], normalization["std"]))
        features = (features / features.norm(dim=1, keepdim=True)).double().cpu().numpy()
        classifier = LogisticRegression(C=cfg.classifier_for(shot)[1], max_iter=1000, random_state=0)
        classifier.fit(features[: len(support)], task.tiled_support(cfg.n_aug)[1])
        predicted = classifier.predict(features[len(support):])
        accuracies.append(float((predicted == task.query_labels).mean()))
    return accuracies, time.perf_counter() - started


def fast(cfg: EvalConfig, shot: int, model: torch.nn.Module, normalization: dict, images: np.ndarray,
         labels: np.ndarray, padding: int, device: torch.device) -> tuple[dict, float]:
    """``metantk_nas.evaluate`` for one shot setting, timed from the inference copy and query bank onwards."""
    started = time.perf_counter()
    extractor = FeatureExtractor(model, normalization["mean"], normalization["std"], device, cfg.batch_size,
                                 cfg.amp)
    bank = extractor.bank(images)
    result = evaluate_shot(cfg, shot, extractor, images, labels, bank, padding)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--n-aug", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=EvalConfig.batch_size)
    parser.add_argument("--precisions", nargs="+", choices=("float32", "bf16"), default=["float32", "bf16"],
                        help="fast-side feature precisions to time")
    parser.add_argument("--out", default="benchmark_evaluate.json")
    args = parser.parse_args()

    cfg = EvalConfig(shots=tuple(args.shots), tasks=args.tasks, queries=args.queries, n_aug=args.n_aug,
                     seed=args.seed, device=args.device, batch_size=args.batch_size)
    device = select_device(cfg.device)
    model, meta = load_model(args.model, device)
    split = open_split(args.dataset, cfg.split)
    normalization = meta["normalization"]
    padding = meta["config"].get("crop_padding", 8)

    rows = []
    for shot in cfg.shots:
        slow_acc, slow_s = per_task(cfg, shot, model, normalization, split.images, split.labels, padding, device)
        slow_mean = float(np.mean(slow_acc))
        print(f"{shot}-shot, {cfg.tasks} tasks, {cfg.queries} queries/class: per-task {slow_s:.1f} s, "
              f"accuracy {100 * slow_mean:.2f} %", flush=True)
        for precision in args.precisions:
            variant = dataclasses.replace(cfg, amp=precision == "bf16")
            result, fast_s = fast(variant, shot, model, normalization, split.images, split.labels, padding, device)
            row = {"shot": shot, "tasks": cfg.tasks, "queries_per_class": cfg.queries, "precision": precision,
                   "fast_s": fast_s, "per_task_s": slow_s, "speedup": slow_s / fast_s,
                   "fast_mean_acc": result["mean"], "per_task_mean_acc": slow_mean,
                   "acc_difference_points": 100 * abs(result["mean"] - slow_mean),
                   "tasks_with_identical_accuracy": float(np.mean(np.isclose(result["accuracies"], slow_acc))),
                   "fast_timing": result["timing"]}
            rows.append(row)
            print(f"  fast ({precision}) {fast_s:.1f} s, speed-up {row['speedup']:.1f}x; accuracy "
                  f"{100 * result['mean']:.2f} % (diff {row['acc_difference_points']:.3f} points, identical on "
                  f"{100 * row['tasks_with_identical_accuracy']:.1f} % of tasks)", flush=True)
    write_json(args.out, {"benchmark": "evaluate", "model": args.model, "dataset": args.dataset,
                          "device": str(device), "torch_threads": torch.get_num_threads(), "results": rows,
                          "provenance": provenance.collect(cfg.to_dict(), cfg.seed)})


if __name__ == "__main__":
    main()

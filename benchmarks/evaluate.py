"""Benchmark: the fast few-shot evaluation against a straightforward per-task implementation.

    python benchmarks/evaluate.py --model OUT/model.pt --dataset STORE --tasks 1000 --shots 1 5 --out bench.json

Both sides use the same trained model, the same tasks (seeded) and the same augmented supports
(each task's augmentation generator depends only on (seed, shot, task)). The straightforward side
forwards each task's supports and its 250 queries and fits scikit-learn ``LogisticRegression`` per task
(the official ``meta_test`` settings); the fast side computes every query feature once, forwards
supports of many tasks per batch and solves all logistic regressions at once (``metantk_nas.evaluate``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from metantk_nas import provenance
from metantk_nas.data.episodes import TaskSampler
from metantk_nas.data.store import open_split
from metantk_nas.data.transforms import to_tensor
from metantk_nas.device import select_device
from metantk_nas.evaluate.classifiers import fit_predict
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.evaluate.features import FeatureExtractor, augmented_supports, support_generator
from metantk_nas.evaluate.fewshot import evaluate_shot
from metantk_nas.io import write_json
from metantk_nas.train.batches import gather
from metantk_nas.train.loop import load_model


def per_task(cfg: EvalConfig, shot: int, extractor: FeatureExtractor, images: np.ndarray, labels: np.ndarray,
             padding: int) -> tuple[list[float], float]:
    """The straightforward loop: forward supports + queries of each task, fit scikit-learn per task."""
    from sklearn.linear_model import LogisticRegression

    sampler = TaskSampler(labels, cfg.n_way, shot, cfg.queries, cfg.seed)
    accuracies = []
    started = time.perf_counter()
    for index in range(cfg.tasks):
        task = sampler.task(index)
        generator = support_generator(cfg.seed, shot, index, extractor.device)
        support = extractor.embed(augmented_supports(images, task, cfg.n_aug, generator, extractor.device, padding))
        query = extractor.embed(to_tensor(gather(images, task.query), extractor.device))
        model = LogisticRegression(C=cfg.C_for(shot), max_iter=1000, random_state=0)
        model.fit(support.double().numpy(), task.tiled_support(cfg.n_aug)[1])
        accuracies.append(float((model.predict(query.double().numpy()) == task.query_labels).mean()))
    return accuracies, time.perf_counter() - started


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
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", default="benchmark_evaluate.json")
    args = parser.parse_args()

    cfg = EvalConfig(shots=tuple(args.shots), tasks=args.tasks, queries=args.queries, n_aug=args.n_aug,
                     seed=args.seed, device=args.device, batch_size=args.batch_size)
    device = select_device(cfg.device)
    model, meta = load_model(args.model, device)
    split = open_split(args.dataset, cfg.split)
    extractor = FeatureExtractor(model, meta["normalization"]["mean"], meta["normalization"]["std"], device,
                                 cfg.batch_size)
    padding = meta["config"].get("crop_padding", 8)

    rows = []
    started = time.perf_counter()
    bank = extractor.bank(split.images)
    bank_s = time.perf_counter() - started
    for shot in cfg.shots:
        fast = evaluate_shot(cfg, shot, extractor, split.images, split.labels, bank, padding)
        fast_s = bank_s / len(cfg.shots) + fast["timing"]["support_features_s"] + fast["timing"]["classifier_s"]
        slow_acc, slow_s = per_task(cfg, shot, extractor, split.images, split.labels, padding)
        row = {"shot": shot, "tasks": cfg.tasks, "fast_s": fast_s, "per_task_s": slow_s, "speedup": slow_s / fast_s,
               "fast_mean_acc": fast["mean"], "per_task_mean_acc": float(np.mean(slow_acc)),
               "acc_difference_points": 100 * abs(fast["mean"] - float(np.mean(slow_acc))),
               "tasks_with_identical_accuracy": float(np.mean(np.isclose(fast["accuracies"], slow_acc))),
               "fast_timing": {**fast["timing"], "query_bank_s_share": bank_s / len(cfg.shots)}}
        rows.append(row)
        print(f"{shot}-shot, {cfg.tasks} tasks: fast {fast_s:.1f} s, per-task {slow_s:.1f} s, "
              f"speed-up {row['speedup']:.1f}x; accuracy {100 * row['fast_mean_acc']:.2f} vs "
              f"{100 * row['per_task_mean_acc']:.2f} % (diff {row['acc_difference_points']:.3f} points)")
    write_json(args.out, {"benchmark": "evaluate", "model": args.model, "dataset": args.dataset,
                          "device": str(device), "torch_threads": torch.get_num_threads(), "results": rows,
                          "provenance": provenance.collect(cfg.to_dict(), cfg.seed)})


if __name__ == "__main__":
    main()

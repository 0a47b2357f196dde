"""The few-shot evaluation of Paper §6.1 (reference §6.3): N-way K-shot test tasks, linear probe on features.

    metantk-nas evaluate --model results/train/x/model.pt --dataset resources/mini --shots 1 5 --out results/eval/x

Per shot: ``tasks`` tasks from the test classes (task ``i`` depends only on ``(seed, i)``), supports
tiled ``n_aug``× with independent RFS augmentation, queries un-augmented, L2-normalised features of the
network in eval mode, a classifier fitted on the supports. Writes ``OUT/{k}shot.json``.

Tasks are stacked by the shared builder (``TaskSampler.stack``); their images are not built by
``stacked_images`` as in the search, because evaluation indexes a bank of query features computed once
and augments each task's supports from its own generator (results independent of batching).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from metantk_nas import provenance
from metantk_nas.data.episodes import TaskSampler
from metantk_nas.data.store import open_split
from metantk_nas.evaluate.classifiers import fit_predict
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.evaluate.features import FeatureExtractor, support_features
from metantk_nas.evaluate.stats import mean_ci95
from metantk_nas.io import write_json

#: Tasks whose support features and classifiers are held in memory at once (bounds memory, not results).
TASK_CHUNK = 250


def evaluate(cfg: EvalConfig, model_path: str | os.PathLike, dataset_dir: str | os.PathLike,
             out_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[int, dict[str, Any]]:
    """Evaluate a trained model; returns ``{shot: result}`` and writes ``OUT/{shot}shot.json`` when ``out_dir``."""
    from metantk_nas.device import select_device
    from metantk_nas.space.checkpoint import load_model

    device = select_device(cfg.device)
    model, meta = load_model(model_path, device)
    split = open_split(dataset_dir, cfg.split)
    if split.image_size != meta["image_size"]:
        raise ValueError(f"{dataset_dir}: images are {split.image_size}x{split.image_size} but {model_path} was trained "
                         f"on {meta['image_size']}x{meta['image_size']} images; evaluate on a store of that size")
    norm = meta["normalization"]
    extractor = FeatureExtractor(model, norm["mean"], norm["std"], device, cfg.batch_size, cfg.amp)

    started = time.perf_counter()
    bank = extractor.bank(split.images)  # every query feature, computed once for all tasks and shots
    bank_seconds = time.perf_counter() - started

    results = {}
    for shot in cfg.shots:
        padding = meta["config"].get("crop_padding", 8)
        result = evaluate_shot(cfg, shot, extractor, split.images, split.labels, bank, padding, progress)
        result["timing"]["query_bank_s"] = bank_seconds
        architecture = {"genotype": meta["genotype"]} if "genotype" in meta else {"backbone": meta["backbone"]}
        result.update(model=str(model_path), **architecture, dataset=str(dataset_dir),
                      provenance=provenance.collect(cfg.to_dict(), cfg.seed))
        if out_dir is not None:
            write_json(Path(out_dir) / f"{shot}shot.json", result)
        results[shot] = result
    return results


def _jobs(n_jobs: int) -> int:
    """scikit-learn tasks in parallel: ``-1`` means as many as this process's threads (``--threads``)."""
    import torch

    return torch.get_num_threads() if n_jobs == -1 else n_jobs


def evaluate_shot(cfg: EvalConfig, shot: int, extractor: FeatureExtractor, images: np.ndarray, labels: np.ndarray,
                  bank: np.ndarray, padding: int = 8, progress: bool = False) -> dict[str, Any]:
    """All ``cfg.tasks`` tasks of one shot count, in chunks; per-task accuracies and their summary.

    ``padding`` is the support augmentation's crop padding (the one the network was trained with).
    """
    sampler = TaskSampler(labels, cfg.n_way, shot, cfg.queries, cfg.seed)
    classifier, C = cfg.classifier_for(shot)
    accuracies: list[float] = []
    feature_s = classifier_s = 0.0
    chunks = range(0, cfg.tasks, TASK_CHUNK)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"{shot}-shot", unit="chunk", leave=False)
    for first in chunks:
        batch = sampler.stack(min(TASK_CHUNK, cfg.tasks - first), start=first)
        t0 = time.perf_counter()
        support = support_features(extractor, images, batch, first, shot, cfg.n_aug, cfg.seed, padding)
        query = bank[batch.query]
        t1 = time.perf_counter()
        predicted = fit_predict(support, batch.tiled_support(cfg.n_aug)[1], query, n_way=cfg.n_way,
                                classifier=classifier, C=C, backend=cfg.backend, n_jobs=_jobs(cfg.n_jobs))
        t2 = time.perf_counter()
        accuracies.extend((predicted == batch.query_labels).mean(axis=1).tolist())
        feature_s += t1 - t0
        classifier_s += t2 - t1
    mean, ci95 = mean_ci95(accuracies)
    return {
        "n_shot": shot, "n_way": cfg.n_way, "n_tasks": cfg.tasks, "n_queries": cfg.queries, "n_aug": cfg.n_aug,
        "split": cfg.split, "classifier": classifier, "C": C,
        "backend": cfg.backend if classifier == "lr" else "sklearn",
        "seeds": {"tasks": cfg.seed, "augmentation": f"derive_seed({cfg.seed}, 'support-augment', {shot}, task)"},
        "unit": "fraction", "mean": mean, "ci95": ci95, "accuracies": accuracies,
        "timing": {"support_features_s": feature_s, "classifier_s": classifier_s},
        "config": cfg.to_dict(),
    }

"""Each baseline's own test protocol, on the very tasks the searched cells are evaluated on.

    metantk-nas baseline evaluate maml --model .../train-1shot/model.pt --dataset resources/mini --out .../evaluate

Task ``i`` of a shot setting is task ``i`` of ``TaskSampler(test labels, n_way, shot, queries, seed)`` with
the ``evaluate`` section's seed and queries: the same supports and queries ``metantk-nas evaluate`` draws
for the cells. Protocols (the original papers'): MAML adapts every weight on the supports with
``inner_steps_test`` SGD steps, ANIL adapts the head, MetaOptNet solves its SVM on the support
embeddings. Supports are not augmented (none of the three augments at test). Writes ``OUT/{k}shot.json``
in the layout of ``metantk-nas evaluate`` with ``protocol`` added.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metantk_nas import provenance
from metantk_nas.baselines.algorithms import Algorithm
from metantk_nas.baselines.config import MAMLConfig, MetaOptNetConfig
from metantk_nas.baselines.maml import adapt_and_predict
from metantk_nas.baselines.svm import svm_cs_logits
from metantk_nas.data.episodes import TaskSampler, stacked_images
from metantk_nas.data.store import open_split
from metantk_nas.data.transforms import normalize, to_tensor
from metantk_nas.device import select_device
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.evaluate.stats import mean_ci95
from metantk_nas.io import write_json
from metantk_nas.seeding import seed_everything

#: Tasks whose images are held at once (bounds memory, not results).
TASK_CHUNK = 50


def evaluate_protocol(algorithm: Algorithm, cfg: EvalConfig, algo_cfg: MAMLConfig | MetaOptNetConfig,
                      model_path: str | os.PathLike, dataset_dir: str | os.PathLike,
                      out_dir: str | os.PathLike | None = None) -> dict[int, dict[str, Any]]:
    """Evaluate a meta-trained baseline with its own protocol; returns ``{shot: result}``."""
    from metantk_nas.space.checkpoint import load_model

    if algorithm.protocol not in ("maml", "anil", "svm"):
        raise ValueError(f"baseline {algorithm.name}: its protocol is the linear probe; use `metantk-nas evaluate`")
    device = select_device(cfg.device)
    seed_everything(cfg.seed, deterministic=device.type != "cuda")
    model, meta = load_model(model_path, device)
    split = open_split(dataset_dir, cfg.split)
    if split.image_size != meta["image_size"]:
        raise ValueError(f"{dataset_dir}: images are {split.image_size}x{split.image_size} but {model_path} was trained "
                         f"on {meta['image_size']}x{meta['image_size']} images; evaluate on a store of that size")
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]

    def transform(images: np.ndarray) -> torch.Tensor:
        return normalize(to_tensor(images, device), mean, std)

    # The SVM reads fixed embeddings of un-augmented images: every test image is embedded once (as the
    # cells' query bank), each task indexes them. MAML and ANIL adapt the weights per task: no bank.
    bank = _embedding_bank(model, split.images, transform) if algorithm.protocol == "svm" else None
    results = {}
    for shot in cfg.shots:
        sampler = TaskSampler(split.labels, cfg.n_way, shot, cfg.queries, cfg.seed)
        accuracies: list[float] = []
        started = time.perf_counter()
        for first in range(0, cfg.tasks, TASK_CHUNK):
            batch = sampler.stack(min(TASK_CHUNK, cfg.tasks - first), start=first)
            ys = torch.from_numpy(batch.support_labels).to(device)
            yq = torch.from_numpy(batch.query_labels).to(device)
            if bank is not None:
                index = torch.from_numpy(batch.support), torch.from_numpy(batch.query)
                logits = svm_cs_logits(bank[index[1]], bank[index[0]], ys, cfg.n_way, C=algo_cfg.C,
                                       max_iter=algo_cfg.qp_iterations, ridge=algo_cfg.ridge)
                predicted = logits.argmax(-1)
            else:
                xs = stacked_images(split.images, batch.support, transform)
                xq = stacked_images(split.images, batch.query, transform)
                predicted = _adapted_predictions(algorithm, algo_cfg, model, xs, ys, xq)
            accuracies.extend((predicted == yq).float().mean(dim=1).tolist())
        mean_acc, ci95 = mean_ci95(accuracies)
        result = {
            "n_shot": shot, "n_way": cfg.n_way, "n_tasks": cfg.tasks, "n_queries": cfg.queries, "n_aug": 1,
            "split": cfg.split, "protocol": algorithm.protocol, "algorithm": algorithm.name,
            "protocol_settings": _protocol_settings(algorithm, algo_cfg),
            "seeds": {"tasks": cfg.seed}, "unit": "fraction", "mean": mean_acc, "ci95": ci95,
            "accuracies": accuracies, "timing": {"seconds": time.perf_counter() - started},
            "config": cfg.to_dict(), "model": str(model_path), "backbone": meta["backbone"],
            "dataset": str(dataset_dir), "provenance": provenance.collect(cfg.to_dict(), cfg.seed),
        }
        if out_dir is not None:
            write_json(Path(out_dir) / f"{shot}shot.json", result)
        results[shot] = result
    return results


def _protocol_settings(algorithm: Algorithm, algo_cfg: MAMLConfig | MetaOptNetConfig) -> dict[str, Any]:
    if algorithm.protocol == "svm":
        return {"C": algo_cfg.C, "qp_iterations": algo_cfg.qp_iterations, "ridge": algo_cfg.ridge}
    return {"inner_steps": algo_cfg.inner_steps_test, "inner_lr": algo_cfg.inner_lr, "adapt": algorithm.adapt}


def _embedding_bank(model: torch.nn.Module, images: np.ndarray, transform: Any, batch_size: int = 128) -> torch.Tensor:
    """``forward_features`` of every image, in eval mode (ResNet-12: running statistics, no dropout)."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model.forward_features(transform(np.asarray(images[start:start + batch_size])))
                          for start in range(0, len(images), batch_size)])


def _adapted_predictions(algorithm: Algorithm, algo_cfg: MAMLConfig, model: torch.nn.Module, xs: torch.Tensor,
                         ys: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """MAML/ANIL: predicted query labels (tasks, queries) after adapting to each task's supports."""
    model.train()  # Conv4 normalises with batch statistics, as MAML does at test time
    return torch.stack([
        adapt_and_predict(model, xs[t], ys[t], xq[t], steps=algo_cfg.inner_steps_test, lr=algo_cfg.inner_lr,
                          adapt=algorithm.adapt)
        for t in range(xs.shape[0])
    ])

"""Episodic meta-training of a Table 1 baseline (MAML, ANIL, MetaOptNet-SVM), resumable after a kill.

    metantk-nas baseline train maml --shot 1 --dataset resources/mini --out results/mini/baselines/maml/seed0/train-1shot

Update ``u`` trains on tasks ``u·B … u·B+B−1`` of a sampler seeded by the run's seed, and augments them
(MetaOptNet) from a generator seeded by ``(seed, u)``; dropout and DropBlock draw from torch's
generator, whose state is in the checkpoint. So a run resumed from ``work/ckpt_last.pt`` trains on
exactly the tasks and draws of an uninterrupted one and, on the CPU, ends with identical weights.
Outputs (``out_dir``): ``model.pt`` (readable by ``metantk-nas evaluate``: the linear probe), ``metrics.csv``
and ``train.json`` (with the training time per 1000 episodes).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from metantk_nas import provenance
from metantk_nas.baselines.algorithms import Algorithm
from metantk_nas.baselines.config import MAMLConfig, MetaOptNetConfig
from metantk_nas.baselines.maml import meta_loss
from metantk_nas.baselines.svm import SVMHead
from metantk_nas.data.episodes import TaskSampler, stacked_images
from metantk_nas.data.store import open_split
from metantk_nas.data.transforms import normalize, rfs_train_augment, to_tensor
from metantk_nas.device import select_device
from metantk_nas.io import atomic_write_text, csv_text, write_json
from metantk_nas.seeding import derive_seed, seed_everything
from metantk_nas.space import count_parameters
from metantk_nas.space.backbones import BackboneSpec
from metantk_nas.space.checkpoint import save_model
from metantk_nas.train.checkpoint import load_checkpoint, save_checkpoint

#: Classes per training task (every Table 1 number is 5-way).
N_WAY = 5
METRIC_COLUMNS = ("update", "episodes", "loss", "acc", "lr", "seconds")


def meta_train(algorithm: Algorithm, cfg: MAMLConfig | MetaOptNetConfig, dataset_dir: str | os.PathLike,
               out_dir: str | os.PathLike, work_dir: str | os.PathLike | None = None, *, shot: int | None = None,
               progress: bool = True, on_checkpoint: Callable[[int], None] | None = None) -> Path:
    """Meta-train ``algorithm`` on the store's train split; return the path of ``model.pt``.

    Args:
        algorithm: an episodic algorithm of the registry.
        cfg: its settings (:class:`MAMLConfig` for MAML and ANIL, :class:`MetaOptNetConfig`).
        shot: the shot setting of a per-shot algorithm's model (MAML, ANIL); None for MetaOptNet,
            which trains once with ``cfg.train_shot`` shots.
        on_checkpoint: called with the update count after each checkpoint (tests kill the process there).
    """
    out_dir, dataset_dir = Path(out_dir), Path(dataset_dir)
    work_dir = Path(work_dir) if work_dir is not None else out_dir / "work"
    ckpt_path = work_dir / "ckpt_last.pt"
    svm = algorithm.protocol == "svm"
    if algorithm.per_shot == (shot is None):
        raise ValueError(f"baseline {algorithm.name}: " + ("--shot is required (one model per shot setting)"
                                                           if algorithm.per_shot else "trains once; give no --shot"))
    train_shot = shot if algorithm.per_shot else cfg.train_shot
    batch = cfg.meta_batch(shot) if algorithm.per_shot else cfg.meta_batch
    updates = cfg.meta_steps if not svm else cfg.epochs * cfg.updates_per_epoch

    device = select_device(cfg.device)
    seed_everything(cfg.seed, deterministic=device.type != "cuda")
    split = open_split(dataset_dir, "train")
    mean, std = [float(v) for v in split.mean], [float(v) for v in split.std]
    sampler = TaskSampler(split.labels, N_WAY, train_shot, cfg.queries, derive_seed(cfg.seed, "meta-train"))
    data_identity = {"name": split.manifest.get("name"), "files": split.manifest.get("files")}

    spec = BackboneSpec(algorithm.backbone, cfg.width, getattr(cfg, "drop_rate", 0.0))
    model = spec.build(num_classes=N_WAY, image_size=split.image_size).to(device)
    head = SVMHead(C=cfg.C, max_iter=cfg.qp_iterations, ridge=cfg.ridge).to(device) if svm else None
    if svm:
        parameters = list(model.parameters()) + list(head.parameters())
        optimizer = torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                    weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.meta_lr)
    identity = {"algorithm": algorithm.name, "train_shot": train_shot, **spec.to_dict()}
    start, history = 0, []
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, genotype=identity, config=cfg.to_dict(), data_identity=data_identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if head is not None:
            head.load_state_dict(state["head"])
        torch.set_rng_state(state["rng"]["torch_cpu"])
        if state["rng"]["torch_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["torch_cuda"])
        start, history = state["update"], state["history"]
        print(f"resuming from {ckpt_path} after update {start}", file=sys.stderr, flush=True)

    def episode(update: int) -> tuple[torch.Tensor, ...]:
        tasks = sampler.stack(batch, start=update * batch)
        generator = None
        if svm:
            generator = torch.Generator(device=device)
            generator.manual_seed(derive_seed(cfg.seed, "augment", update))

        def transform(images: Any) -> torch.Tensor:
            x = to_tensor(images, device)
            if generator is not None:
                x = rfs_train_augment(x, generator, padding=cfg.crop_padding)
            return normalize(x, mean, std)

        return (stacked_images(split.images, tasks.support, transform),
                torch.from_numpy(tasks.support_labels).to(device),
                stacked_images(split.images, tasks.query, transform),
                torch.from_numpy(tasks.query_labels).to(device))

    model.train()
    loss_sum, acc_sum, seen = 0.0, 0.0, 0
    started = time.perf_counter()
    bar = _progress(range(start, updates), updates - start, f"{algorithm.name} meta-training", progress)
    for update in bar:
        xs, ys, xq, yq = episode(update)
        if svm:
            lr = cfg.lr * cfg.lr_factor(update // cfg.updates_per_epoch + 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            tasks, n_support, n_query = xs.shape[0], xs.shape[1], xq.shape[1]
            features = model.forward_features(torch.cat([xs.flatten(0, 1), xq.flatten(0, 1)]))
            support = features[:tasks * n_support].view(tasks, n_support, -1)
            query = features[tasks * n_support:].view(tasks, n_query, -1)
            logits = head(query, support, ys, N_WAY)
            loss = F.cross_entropy(logits.reshape(-1, N_WAY), yq.reshape(-1), label_smoothing=cfg.label_smoothing)
            acc = (logits.detach().argmax(-1) == yq).float().mean()
        else:
            lr = cfg.meta_lr
            loss, acc = meta_loss(model, xs, ys, xq, yq, steps=cfg.inner_steps, lr=cfg.inner_lr,
                                  adapt=algorithm.adapt, first_order=cfg.first_order)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum, acc_sum, seen = loss_sum + float(loss.detach()), acc_sum + float(acc), seen + 1
        done = update + 1
        if done % cfg.checkpoint_every == 0 or done == updates:
            seconds = time.perf_counter() - started
            history.append({"update": done, "episodes": done * batch, "loss": loss_sum / seen, "acc": acc_sum / seen,
                            "lr": lr, "seconds": seconds})
            save_checkpoint(ckpt_path, {
                "update": done, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "head": head.state_dict() if head is not None else {},
                "rng": {"torch_cpu": torch.get_rng_state(),
                        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                "config": cfg.to_dict(), "genotype": identity, "data": data_identity, "history": history,
            })
            atomic_write_text(work_dir / "metrics.csv", csv_text(METRIC_COLUMNS, history))
            loss_sum, acc_sum, seen, started = 0.0, 0.0, 0, time.perf_counter()
            if on_checkpoint is not None:
                on_checkpoint(done)

    record = provenance.collect(cfg.to_dict(), cfg.seed)
    model_path = out_dir / "model.pt"
    extra = {"svm_scale": head.scale.detach().item()} if head is not None else {}
    save_model(model_path, model, spec, config=cfg.to_dict(), num_classes=N_WAY,
               normalization={"mean": mean, "std": std}, image_size=split.image_size, dataset=str(dataset_dir),
               provenance=record, **extra)
    atomic_write_text(out_dir / "metrics.csv", csv_text(METRIC_COLUMNS, history))
    seconds = sum(row["seconds"] for row in history)
    episodes = updates * batch
    write_json(out_dir / "train.json", {
        "algorithm": algorithm.name, "backbone": spec.to_dict(), "config": cfg.to_dict(), "train_shot": train_shot,
        "meta_batch": batch, "updates": updates, "episodes": episodes, "dataset": str(dataset_dir),
        # the SVM head replaces the linear head: only the parameters that are used count
        "parameters": count_parameters(model.parameters() if not svm else _feature_parameters(model)),
        "final": history[-1] if history else None, "total_seconds": seconds,
        "seconds_per_1000_episodes": 1000 * seconds / episodes, "device": device.type, "provenance": record,
    })
    return model_path


def _feature_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for name, p in model.named_parameters() if not name.startswith("head.")]


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=5)

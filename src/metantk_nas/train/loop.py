"""RFS supervised training of a final network, top to bottom (nanoGPT ``train.py`` order).

    metantk-nas train --genotype metantk-nas/mini-5cell-1 --dataset resources/mini --out results/train/x

Setup → data → model (scratch or resume from ``work_dir/ckpt_last.pt``) → optimizer → loop.
Outputs (``out_dir``): ``model.pt`` (``metantk_nas.space.checkpoint``: weights + genotype + config + normalisation),
``metrics.csv`` (one row per epoch), ``train.json`` (summary). The checkpoint in ``work_dir`` is
written after every epoch; a run killed at any point resumes from it and, on the CPU, ends with
bit-identical weights.
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
from metantk_nas.data.store import open_split
from metantk_nas.device import select_device
from metantk_nas.io import atomic_write_text, csv_text, write_json
from metantk_nas.seeding import seed_everything
from metantk_nas.space import count_parameters
from metantk_nas.space.checkpoint import Architecture, architecture_record, build_network, save_model
from metantk_nas.train.batches import BatchStream
from metantk_nas.train.checkpoint import load_checkpoint, save_checkpoint
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.schedule import drop_path_at, lr_at

METRIC_COLUMNS = ("epoch", "loss", "acc", "lr", "drop_path", "images_per_s", "seconds")


def train(cfg: TrainConfig, architecture: Architecture, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike,
          work_dir: str | os.PathLike | None = None, progress: bool = True,
          on_epoch_end: Callable[[int], None] | None = None) -> Path:
    """Train ``architecture`` on the store's train split with the RFS recipe; return the path of ``model.pt``.

    Args:
        cfg: hyper-parameters (Paper §6.1 defaults).
        architecture: the cells of the final network (a genotype), or a named backbone (the RFS baseline).
        dataset_dir: a prepared store (``metantk_nas.data``); its ``train`` split is used.
        out_dir: receives ``model.pt``, ``metrics.csv``, ``train.json`` (only at the end, atomically).
        work_dir: holds ``ckpt_last.pt`` (default ``out_dir/work``); an existing checkpoint is resumed.
        progress: show a tqdm bar per epoch.
        on_epoch_end: called with the epoch number once its checkpoint is written (tests kill the
            process there to check that a resumed run ends as an uninterrupted one).
    """
    out_dir, dataset_dir = Path(out_dir), Path(dataset_dir)
    work_dir = Path(work_dir) if work_dir is not None else out_dir / "work"
    ckpt_path = work_dir / "ckpt_last.pt"

    # -- setup: device, seeds, precision ------------------------------------------------------
    device = select_device(cfg.device)
    cuda = device.type == "cuda"
    seed_everything(cfg.seed, deterministic=not cuda)
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_amp = cfg.amp and cuda
    # NHWC on CUDA only: on the CPU, oneDNN's channels_last training aborted with "double free or corruption"
    # (84×84 images, C = 4, torch 2.14.1; the SLURM stage's miniature), so the CPU trains in NCHW.
    memory_format = torch.channels_last if cfg.channels_last and cuda else torch.contiguous_format

    # -- data ------------------------------------------------------------------------------------
    split = open_split(dataset_dir, "train")
    mean, std = split.mean, split.std  # the training store's statistics (official: mini-ImageNet's, §6.2)
    stream = BatchStream(split, cfg.batch_size, cfg.seed, device, mean, std, cfg.crop_padding)
    data_identity = {"name": split.manifest.get("name"), "files": split.manifest.get("files")}

    # -- model: from scratch, or resume ----------------------------------------------------------
    model = build_network(architecture, num_classes=split.num_classes, image_size=split.image_size,
                          channels=cfg.channels, cells=cfg.cells)
    model.to(device=device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start_epoch, history = 1, []
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, genotype=architecture.to_dict(), config=cfg.to_dict(),
                                data_identity=data_identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], stream)
        start_epoch, history = state["epoch"] + 1, state["history"]
        print(f"resuming from {ckpt_path} after epoch {state['epoch']}", file=sys.stderr, flush=True)
    forward = torch.compile(model) if cfg.compile else model

    # -- the loop ----------------------------------------------------------------------------------
    for epoch in range(start_epoch, cfg.epochs + 1):
        # schedules are set at the start of the epoch (§6.2)
        model.drop_path_prob = drop_path_at(epoch, cfg.epochs, cfg.drop_path)
        lr = lr_at(epoch, cfg.lr, cfg.decay_epochs, cfg.decay_rate)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        _sync(device)
        started = time.perf_counter()
        batches = _progress(stream.epoch(), len(stream), f"epoch {epoch}/{cfg.epochs}", progress)
        for x, labels in batches:
            # forward (bf16 autocast on CUDA), backward, step
            x = x.contiguous(memory_format=memory_format)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = forward(x)
                loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # accumulate metrics on the device (no per-step host sync)
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
        _sync(device)
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch, "loss": float(loss_sum) / seen, "acc": float(correct) / seen, "lr": lr,
                        "drop_path": model.drop_path_prob, "images_per_s": seen / seconds, "seconds": seconds})
        # checkpoint every epoch (atomic), then the live metrics
        save_checkpoint(ckpt_path, {
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": _rng_state(stream), "config": cfg.to_dict(), "genotype": architecture.to_dict(),
            "data": data_identity, "history": history,
        })
        atomic_write_text(work_dir / "metrics.csv", _metrics_csv(history))
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    # -- outputs ---------------------------------------------------------------------------------
    record = provenance.collect(cfg.to_dict(), cfg.seed)
    model_path = out_dir / "model.pt"
    save_model(model_path, model, architecture, config=cfg.to_dict(), channels=cfg.channels, cells=cfg.cells,
               num_classes=split.num_classes,
               normalization={"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
               image_size=split.image_size, dataset=str(dataset_dir), provenance=record)
    atomic_write_text(out_dir / "metrics.csv", _metrics_csv(history))
    write_json(out_dir / "train.json", {
        **architecture_record(architecture, cfg.channels, cfg.cells), "config": cfg.to_dict(), "dataset": str(dataset_dir),
        "num_classes": split.num_classes, "train_images": len(split), "parameters": count_parameters(model),
        "epochs": len(history), "final": history[-1] if history else None,
        "total_seconds": sum(row["seconds"] for row in history),
        "seconds_per_epoch": sum(row["seconds"] for row in history) / max(len(history), 1), "provenance": record,
    })
    return model_path


def _rng_state(stream: BatchStream) -> dict[str, Any]:
    """Every generator the loop draws from: torch CPU (drop path on CPU), CUDA, and the data stream."""
    return {"torch_cpu": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "data": stream.state_dict()}


def _set_rng_state(state: dict[str, Any], stream: BatchStream) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if state["torch_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    stream.load_state_dict(state["data"])


def _metrics_csv(history: list[dict[str, Any]]) -> str:
    return csv_text(METRIC_COLUMNS, history)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)

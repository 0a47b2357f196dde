"""Training configuration: one frozen dataclass, the ``train`` section of the workflow config.

Defaults are the mini-ImageNet 5-cell recipe of Paper §6.1 / official `prune_launch.py` (§6.1 of the
reference); tiered-ImageNet and 8-cell settings override lr, epochs, decay_epochs, drop_path and batch_size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.device import check_device
from metantk_nas.options import Options, option


@dataclass(frozen=True)
class TrainConfig(Options):
    """RFS supervised pre-training of a final network (cross-entropy over all training classes)."""

    section: ClassVar[str] = "train"

    # optimizer: SGD with momentum, weight decay on every parameter
    lr: float = option(0.02, "initial SGD learning rate (tiered: 0.01)", exclusive_minimum=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, exclusive_maximum=1)
    weight_decay: float = option(5e-4, "weight decay on every parameter", minimum=0)
    # learning-rate decay: lr0 * decay_rate ** #{d in decay_epochs : epoch > d}
    epochs: int = option(100, "training epochs (tiered: 60)", minimum=1)
    decay_epochs: tuple[int, ...] = option((60, 80), "epochs after which the learning rate is multiplied by "
                                           "decay_rate; strictly ascending, each below epochs (tiered: 30 40 50)",
                                           minimum=1)
    decay_rate: float = option(0.1, "learning-rate factor at each decay epoch", exclusive_minimum=0, maximum=1)
    # data
    batch_size: int = option(64, "training batch size; the last incomplete batch is dropped (8 cells: 40 mini, "
                             "56 tiered)", minimum=1)
    crop_padding: int = option(8, "zero padding of the random crop (RFS: 8 at 84×84); also the evaluation "
                               "supports' augmentation", minimum=0)
    # model
    drop_path: float = option(0.2, "maximum drop-path probability, ramped p·e/E over the epochs (tiered: 0.1)",
                              minimum=0, exclusive_maximum=1)
    channels: int = option(48, "initial channels C of the final network", minimum=1, workflow=False)
    cells: int = option(5, "cells of the final network (two of them reduction cells)", minimum=3, workflow=False)
    # system
    seed: int = option(0, "seed of the initialisation, batches and augmentation", minimum=0, workflow=False)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)
    amp: bool = option(True, "bf16 autocast; only ever active on CUDA", workflow=False)
    channels_last: bool = option(True, "NHWC memory format on CUDA (the CPU trains in NCHW: there oneDNN's NHWC "
                                 "training aborted with a double free at 84×84, C = 4)", workflow=False)
    compile: bool = option(False, "torch.compile the model", workflow=False)

    def check(self) -> None:
        decay = list(self.decay_epochs)
        if decay != sorted(set(decay)) or any(d >= self.epochs for d in decay):
            raise ValueError(f"key 'decay_epochs' must be strictly ascending epochs in 1..{self.epochs - 1} "
                             f"(below epochs = {self.epochs}), got {decay}")
        check_device(self.device)

"""Training configuration: one frozen dataclass mirroring the ``train`` section of the workflow config.

Defaults are the mini-ImageNet 5-cell recipe of Paper §6.1 / official `prune_launch.py` (§6.1 of the
reference); tiered-ImageNet and 8-cell settings override lr, epochs, decay_epochs, drop_path and batch_size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """RFS supervised pre-training of a final network (cross-entropy over all training classes)."""

    # optimizer: SGD with momentum, weight decay on every parameter
    lr: float = 0.02  # initial learning rate (tiered: 0.01)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # learning-rate decay: lr0 * decay_rate ** #{d in decay_epochs : epoch > d}
    epochs: int = 100  # tiered: 60
    decay_epochs: tuple[int, ...] = (60, 80)  # tiered: (30, 40, 50)
    decay_rate: float = 0.1
    # data
    batch_size: int = 64  # 8 cells: 40 (mini) / 56 (tiered); last incomplete batch dropped
    crop_padding: int = 8  # RFS random crop zero padding at 84×84 (also used for the evaluation supports)
    # model
    drop_path: float = 0.2  # maximum drop-path probability, ramped p*e/E (tiered: 0.1)
    channels: int = 48
    cells: int = 5
    # system
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast; only ever active on CUDA
    channels_last: bool = True  # NHWC memory format; only applied on CUDA
    compile: bool = False  # torch.compile the model

    def __post_init__(self) -> None:
        object.__setattr__(self, "decay_epochs", tuple(self.decay_epochs))
        _check(self.lr > 0, "lr", "a positive number", self.lr)
        _check(0 <= self.momentum < 1, "momentum", "a number in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "weight_decay", "a non-negative number", self.weight_decay)
        _check(self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        _check(all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in self.decay_epochs)
               and list(self.decay_epochs) == sorted(set(self.decay_epochs)),
               "decay_epochs", "strictly increasing non-negative integers", self.decay_epochs)
        _check(0 < self.decay_rate <= 1, "decay_rate", "a number in (0, 1]", self.decay_rate)
        _check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _check(self.crop_padding >= 0, "crop_padding", "a non-negative integer", self.crop_padding)
        _check(0 <= self.drop_path < 1, "drop_path", "a probability in [0, 1)", self.drop_path)
        _check(self.channels >= 1, "channels", "an integer >= 1", self.channels)
        _check(self.cells >= 3, "cells", "an integer >= 3 (two reduction cells)", self.cells)
        _check(self.seed >= 0, "seed", "a non-negative integer", self.seed)
        _check(self.device in {"auto", "cpu", "cuda"} or self.device.startswith("cuda:"),
               "device", "'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "train config") -> TrainConfig:
        """Build from a mapping (YAML section, checkpoint), refusing unknown keys and wrong types by name."""
        return _from_dict(cls, values, source)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/pickle-free types (tuples become lists) so it loads with ``weights_only=True``."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}


def _check(ok: bool, key: str, expected: str, got: Any) -> None:
    if not ok:
        raise ValueError(f"{key}: expected {expected}, got {got!r}")


def _from_dict(cls: type, values: Mapping[str, Any], source: str) -> Any:
    """Shared by the train and evaluate configs: type-check every value against the field default."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: expected a mapping of keys to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = fields[key].default
        kwargs[key] = _coerce(value, default, f"{source}: {key}")
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Accept a value of the default's type (ints for floats too); tuples accept lists."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: expected a string, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, default[0] if default else 0, where) for v in value)
        raise ValueError(f"{where}: expected a list, got {value!r}")
    raise TypeError(f"{where}: unsupported field type {type(default).__name__}")

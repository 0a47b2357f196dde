"""The search configuration: one frozen dataclass, faithful to the official code by default.

Each documented paper-vs-code difference is a named option (see ``search/README.md``): the
defaults reproduce the released code (reference §0.1, §2, §3, §4); the alternatives follow the
paper or remove a source of noise. ``from_dict`` refuses unknown keys and bad values so that a
typo in a YAML file can never silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from metantk_nas.space.primitives import PRIMITIVES

METHODS = ("metantk-nas", "te-nas", "linear-regions", "random", "fixed")
#: Allowed values of the string options.
CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS,
    "kernel": ("maml", "anil"),
    "delta": ("relative", "absolute"),
    "init": ("default", "kaiming"),
    "output": ("sum", "logits"),
    "pairing": ("official", "paired"),
    "edge_origin": ("stale", "fresh"),
    "backend": ("auto", "loop", "opacus", "func", "gram"),
}
#: Integer options and their smallest allowed value.
_MIN_INT: dict[str, int] = {
    "cells": 2, "channels": 1, "repeats": 1, "tasks": 1, "ways": 2, "shots": 1, "queries": 1,
    "ntk_images": 2, "resolution": 8, "precision": 0, "region_batches": 1, "region_batch_size": 2,
}


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of one search run (defaults = the official ``script_mini_5cell.sh``)."""

    method: str = "metantk-nas"  # metantk-nas | te-nas | linear-regions | random | fixed
    kernel: str = "maml"  # MetaNTK inner-loop kernel: maml (K = Θ) or anil (K = head-only kernel)
    lam_tau: float = math.inf  # λτ, inner learning rate × time (Appendix E); inf drops the exponential
    reg: float = 1e-3  # ρ added to K_SS inside the pseudo-inverse (Appendix E)
    cells: int = 5  # cells of the C=48 supernet (5 or 8 in the paper)
    channels: int = 48  # initial channels C of the supernet
    seed: int = 0  # the one seed every random choice is derived from
    ops: tuple[str, ...] = PRIMITIVES  # ops alive at the start (official: all 7); a subset searches a smaller space
    genotype: str | None = None  # zoo name or JSON file, method=fixed only
    repeats: int = 3  # repeats of every ΔC/ΔR measurement (official 3)
    tasks: int = 3  # tasks per MetaNTK batch (official dartsbs = 3)
    ways: int = 5  # classes per task
    shots: int = 1  # support images per class
    queries: int = 1  # query images per class
    ntk_images: int = 30  # images of the TE-NAS NTK batch (README: 30 = 3 tasks × 10)
    resolution: int = 32  # search image size (official 32; evaluation uses 84)
    delta: str = "relative"  # relative: (c0 - c)/c0 rounded per repeat (code); absolute: c0 - c (paper)
    precision: int = 3  # decimals of the per-repeat rounding of relative deltas
    init: str = "default"  # default: PyTorch init (code); kaiming: Kaiming normal fan-in (paper)
    output: str = "sum"  # sum: scalar output Σ logits (code); logits: per-logit kernel (paper)
    pairing: str = "official"  # official: fresh tasks/head for origin and candidate; paired: shared per round
    edge_origin: str = "stale"  # stale: MetaNTK origin frozen at the start of the edge stage (code quirk)
    region_batches: int = 3  # linear-region batches per measurement
    region_batch_size: int = 1000  # 1×3×3 inputs per linear-region batch
    backend: str = "auto"  # per-sample-gradient backend handed to metantk_nas.kernels
    device: str = "auto"  # auto | cpu | cuda[:N]

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "search config") -> SearchConfig:
        """Build a config from a mapping; unknown keys and bad values raise ``ValueError``.

        Args:
            values: option name → value (YAML section, CLI overrides, saved ``search.json``).
            source: where the values came from, named in error messages.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; allowed keys: {sorted(known)}")
        coerced = {name: _coerce(name, value, source) for name, value in values.items()}
        try:
            return cls(**coerced)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The resolved options (``lam_tau`` = inf is written as the string ``"inf"``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ops"] = list(self.ops)
        out["lam_tau"] = "inf" if math.isinf(self.lam_tau) else self.lam_tau
        return out

    def replace(self, **changes: Any) -> SearchConfig:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check the Python type of one option; accept ``"inf"``-style strings for floats."""
    default = next(f for f in fields(SearchConfig) if f.name == name).default
    if name == "ops":
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{source}: key 'ops' must be a list of operation names, got {value!r}")
        return tuple(value)
    if name == "genotype":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{source}: key 'genotype' must be a zoo name or a file path, got {value!r}")
        return value
    if isinstance(default, bool) or value is None:
        raise ValueError(f"{source}: key {name!r} must not be null")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: key {name!r} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"{source}: key {name!r} must be a number (or 'inf'), got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: key {name!r} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{source}: key {name!r} must be a string, got {value!r}")
    return value


def validate(cfg: SearchConfig) -> None:
    """Raise ``ValueError`` naming the key and the allowed values when an option is bad."""
    for name, allowed in CHOICES.items():
        value = getattr(cfg, name)
        if value not in allowed:
            raise ValueError(f"key {name!r} must be one of {list(allowed)}, got {value!r}")
    for name, minimum in _MIN_INT.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"key {name!r} must be an integer >= {minimum}, got {value!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ValueError(f"key 'seed' must be a non-negative integer, got {cfg.seed!r}")
    unknown_ops = [op for op in cfg.ops if op not in PRIMITIVES]
    if unknown_ops or not cfg.ops or len(set(cfg.ops)) != len(cfg.ops):
        raise ValueError(f"key 'ops' must be distinct names from {list(PRIMITIVES)}, got {list(cfg.ops)!r}")
    if not (cfg.lam_tau > 0):
        raise ValueError(f"key 'lam_tau' must be > 0 (or inf), got {cfg.lam_tau!r}")
    if not (math.isfinite(cfg.reg) and cfg.reg >= 0):
        raise ValueError(f"key 'reg' must be a finite number >= 0, got {cfg.reg!r}")
    if (cfg.method == "fixed") != (cfg.genotype is not None):
        raise ValueError(
            "key 'genotype' is required for method 'fixed' and only allowed there "
            f"(method={cfg.method!r}, genotype={cfg.genotype!r})"
        )
    if not (cfg.device in {"auto", "cpu", "cuda"} or cfg.device.startswith("cuda:")):
        raise ValueError(f"key 'device' must be one of ['auto', 'cpu', 'cuda', 'cuda:N'], got {cfg.device!r}")

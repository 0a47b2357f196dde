"""Small stores and networks shared by the train/evaluate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metantk_nas.data.store import write_store
from metantk_nas.space import load_genotype

GENOTYPE = "metantk-nas/mini-5cell-1"


def write_random_store(root: Path, classes: int = 6, per_class: int = 12, size: int = 16, seed: int = 0) -> Path:
    """A tiny store of random images (train/val/test with the same class count): fast to train on."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "val", "test"):
        images = rng.integers(0, 256, size=(classes * per_class, size, size, 3), dtype=np.uint8)
        labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
        splits[split] = (images, labels, [f"{split}-{c}" for c in range(classes)])
    return write_store(root, "random", "random", splits, {})


def genotype():
    return load_genotype(GENOTYPE)

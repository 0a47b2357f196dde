"""Training batches: the host prefetch thread (on by default on CUDA) yields exactly the batches without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from metantk_nas.data.store import open_split
from metantk_nas.train.batches import BatchStream


def _epochs(store: Path, prefetch: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    split = open_split(store, "train")
    stream = BatchStream(split, 8, seed=3, device=torch.device("cpu"), mean=np.full(3, 0.5), std=np.full(3, 0.25),
                         padding=2, prefetch=prefetch)
    return [batch for _ in range(2) for batch in stream.epoch()]


def test_prefetch_gives_the_same_batches(random_store: Path, one_thread: None) -> None:
    plain, prefetched = _epochs(random_store, False), _epochs(random_store, True)
    assert len(plain) == len(prefetched) == 2 * (72 // 8)
    for (x, y), (xp, yp) in zip(plain, prefetched, strict=True):
        assert torch.equal(x, xp) and torch.equal(y, yp)
    assert not torch.equal(plain[0][0], plain[1][0])  # batches differ from each other


def test_an_epoch_abandoned_midway_leaves_no_thread_behind(random_store: Path, one_thread: None) -> None:
    import threading

    split = open_split(random_store, "train")
    stream = BatchStream(split, 8, seed=3, device=torch.device("cpu"), mean=np.full(3, 0.5), std=np.full(3, 0.25),
                         prefetch=True)
    epoch = stream.epoch()
    next(epoch)
    epoch.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("train-prefetch")]

"""Training batches straight from the memory-mapped store, augmented as tensors on the device.

Why not a DataLoader: a PIL pipeline with workers starves a GPU at 84×84; here one batch is a
uint8 gather from the memmap (indices sorted for locality), one (pinned, non-blocking) copy and a
handful of batched tensor ops. On a GPU the host gathers the next batch in a background thread while
the GPU works on the current one. All randomness comes from two generators whose states are part of
the checkpoint, so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from metantk_nas.data.store import Split
from metantk_nas.data.transforms import normalize, rfs_train_augment, to_tensor


def gather(images: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``images[indices]`` reading the memmap in ascending order (sequential I/O), returned in the given order."""
    order = np.argsort(indices, kind="stable")
    out = np.empty((len(indices),) + images.shape[1:], dtype=images.dtype)
    out[order] = images[indices[order]]
    return out


class BatchStream:
    """Shuffled, drop-last epochs of augmented, normalised batches from one split.

    Args:
        split: the training split (memmap images, labels, mean/std).
        batch_size: images per batch; the last incomplete batch of an epoch is dropped.
        seed: seeds the index permutation (numpy) and the augmentation (torch, on ``device``).
        device: where batches are augmented and returned.
        mean, std: normalisation statistics ([0, 1] units).
        padding: zero padding of the random crop.
        prefetch: gather the next batch on the host in a background thread (default: on CUDA); the
            batches are the same either way (the thread only reads the memmap).
    """

    def __init__(self, split: Split, batch_size: int, seed: int, device: torch.device,
                 mean: np.ndarray, std: np.ndarray, padding: int = 8, prefetch: bool | None = None) -> None:
        if len(split) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(split)} training images")
        self.split, self.batch_size, self.device, self.padding = split, batch_size, device, padding
        self.prefetch = device.type == "cuda" if prefetch is None else prefetch
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.order_rng = np.random.default_rng([seed, 0])
        self.augment_rng = torch.Generator(device=device)
        self.augment_rng.manual_seed(int(np.random.default_rng([seed, 1]).integers(2**62)))

    def __len__(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass: ``len(self)`` batches of (normalised N×3×H×W float, int64 labels) on the device."""
        permutation = self.order_rng.permutation(len(self.split))
        for images, labels in self._host_batches(permutation):
            x = to_tensor(images, self.device)
            x = normalize(rfs_train_augment(x, self.augment_rng, padding=self.padding), self.mean, self.std)
            yield x, labels.to(self.device, non_blocking=True)

    def _host_batches(self, permutation: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The uint8 images and labels of each batch of ``permutation``, on the host (pinned on CUDA); with
        ``prefetch`` one batch ahead in a background thread, so memmap reads overlap the device's work."""

        def load(start: int) -> tuple[torch.Tensor, torch.Tensor]:
            indices = permutation[start:start + self.batch_size]
            images = torch.from_numpy(gather(self.split.images, indices))
            labels = torch.from_numpy(self.split.labels[indices].astype(np.int64))
            if self.device.type == "cuda":
                images, labels = images.pin_memory(), labels.pin_memory()
            return images, labels

        starts = list(range(0, len(self) * self.batch_size, self.batch_size))
        if not self.prefetch:
            yield from map(load, starts)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="train-prefetch") as pool:
            pending = pool.submit(load, starts[0])
            for following in [*starts[1:], None]:
                batch = pending.result()
                if following is not None:
                    pending = pool.submit(load, following)
                yield batch

    def state_dict(self) -> dict[str, Any]:
        """Generator states as plain types / tensors (loadable with ``weights_only=True``)."""
        return {"order": self.order_rng.bit_generator.state, "augment": self.augment_rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order_rng.bit_generator.state = state["order"]
        self.augment_rng.set_state(state["augment"])

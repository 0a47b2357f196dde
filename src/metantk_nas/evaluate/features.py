"""Features for few-shot evaluation: L2-normalised GAP features of the network in eval mode.

Why it is fast: every test image's un-augmented feature is computed once (the *query bank*) and
indexed by all tasks; only the augmented support copies are forwarded per task, many tasks per
forward pass, through an inference copy of the network with BatchNorm folded into the convolutions
(and optionally in bf16). Each task's augmentation draws from its own generator seeded by ``(seed, shot, task)``,
so features do not depend on the batch size or on which other tasks share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from metantk_nas.data.episodes import TaskBatch
from metantk_nas.data.transforms import normalize, rfs_train_augment, to_tensor
from metantk_nas.evaluate.inference import fold_batchnorm
from metantk_nas.seeding import derive_seed
from metantk_nas.train.batches import gather


class FeatureExtractor:
    """Wraps a trained network: normalised images in, L2-normalised features (float32, CPU) out.

    Args:
        model: a network with ``forward_features``; an eval-mode copy with BatchNorm folded is used
            (BN running statistics, no drop path), the model itself is left untouched.
        mean, std: the normalisation the network was trained with ([0, 1] units).
        device: where images are augmented and forwarded.
        batch_size: images per forward pass (on a CPU ~128 keeps activations in cache; larger is slower).
            Images go through in channels_last, also on the CPU, where it is ~1.7× faster than NCHW here.
        amp: bf16 autocast (CUDA, or a CPU with native bf16 such as AVX512-BF16/AMX; elsewhere slow).
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], device: torch.device,
                 batch_size: int = 128, amp: bool = False) -> None:
        self.model = fold_batchnorm(model)
        self.mean, self.std = list(mean), list(std)
        self.device, self.batch_size = device, batch_size
        self.amp = amp
        self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def embed(self, x01: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] on the device → (N, d) unit-norm features on the CPU."""
        out = []
        for start in range(0, len(x01), self.batch_size):
            x = normalize(x01[start:start + self.batch_size], self.mean, self.std)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                f = self.model.forward_features(x.contiguous(memory_format=torch.channels_last)).float()
            out.append(f / f.norm(dim=1, keepdim=True))  # the official x/‖x‖₂ (no epsilon)
        return torch.cat(out).cpu()

    def bank(self, images: np.ndarray) -> np.ndarray:
        """Un-augmented features of every image of a split (N, d), read from the memmap in order."""
        chunks = [self.embed(to_tensor(np.array(images[start:start + self.batch_size]), self.device))
                  for start in range(0, len(images), self.batch_size)]
        return torch.cat(chunks).numpy()


def support_generator(seed: int, shot: int, task_index: int, device: torch.device) -> torch.Generator:
    """The augmentation generator of one task's supports (independent of batching)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, "support-augment", shot, task_index))
    return generator


def augmented_supports(images: np.ndarray, support: np.ndarray, n_aug: int, generator: torch.Generator,
                       device: torch.device, padding: int = 8) -> torch.Tensor:
    """One task's ``support`` indices tiled ``n_aug`` times (as RFS), each copy independently RFS-augmented,
    in [0, 1]."""
    return rfs_train_augment(to_tensor(gather(images, np.tile(support, n_aug)), device), generator, padding=padding)


def support_features(extractor: FeatureExtractor, images: np.ndarray, tasks: TaskBatch, first_index: int,
                     shot: int, n_aug: int, seed: int, padding: int = 8) -> np.ndarray:
    """Features (T, n_aug·n_way·shot, d) of the tasks' augmented supports, many tasks per forward pass.

    ``first_index`` is the global index of the first task (it seeds the augmentation); ``padding`` is the
    random-crop padding the network was trained with.
    """
    per_task = tasks.support.shape[1] * n_aug
    group = max(1, extractor.batch_size // per_task)
    out = []
    for start in range(0, tasks.n_tasks, group):
        batch = [augmented_supports(images, support, n_aug,
                                    support_generator(seed, shot, first_index + start + offset, extractor.device),
                                    extractor.device, padding)
                 for offset, support in enumerate(tasks.support[start:start + group])]
        out.append(extractor.embed(torch.cat(batch)).view(len(batch), per_task, -1))
    return torch.cat(out).numpy()

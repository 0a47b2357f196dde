"""Few-shot tasks as dense tensors in the paper's regression setting (§3, Appendix B).

Inputs: each image is resized to ``image_size`` (antialiased bilinear, only if the store differs),
flattened, centred by its own mean pixel value and scaled to unit norm (Assumption 1). The centring is
ours: glyph images differ by random background colours, and without it every pair of images is nearly
parallel, which makes the NTK ill-conditioned (condition number ~10x larger on the glyph data) and slows
the linear rate by the same factor without changing anything the theorems say.
Targets are one-hot rows of the task's k ways, not centred: the ``Y`` of the paper's square loss (Eq. 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np
import torch

from metantk_nas.data.episodes import TaskSampler, stacked_images
from metantk_nas.data.store import open_split


@dataclass(frozen=True)
class TaskTensors:
    """``N`` tasks with ``n`` queries and ``m`` supports each (class-major inside a task).

    Shapes: ``query_x (N, n, d)``, ``query_y (N, n, k)``, ``query_labels (N, n)`` and the same for support.
    """

    query_x: torch.Tensor
    query_y: torch.Tensor
    query_labels: torch.Tensor
    support_x: torch.Tensor
    support_y: torch.Tensor
    support_labels: torch.Tensor

    @property
    def n_tasks(self) -> int:
        return int(self.query_x.shape[0])

    @property
    def n_query(self) -> int:
        return int(self.query_x.shape[1])

    @property
    def n_support(self) -> int:
        return int(self.support_x.shape[1])

    @property
    def n_ways(self) -> int:
        return int(self.query_y.shape[2])

    @property
    def in_features(self) -> int:
        return int(self.query_x.shape[2])

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> "TaskTensors":
        """Move to ``device``; inputs and targets in ``dtype``, labels stay int64."""
        moved = {}
        for item in fields(self):
            value = getattr(self, item.name)
            moved[item.name] = value.to(device) if item.name.endswith("labels") else value.to(device, dtype)
        return TaskTensors(**moved)

    def concat(self, other: "TaskTensors") -> "TaskTensors":
        """Tasks of ``self`` followed by those of ``other`` (same shapes per task)."""
        return TaskTensors(**{item.name: torch.cat([getattr(self, item.name), getattr(other, item.name)])
                              for item in fields(self)})


def input_rows(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 ``N×H×W×C`` images to float64 rows: resized, flattened, mean-centred, unit norm."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float64) / 255.0
    if pixels.shape[-1] != image_size or pixels.shape[-2] != image_size:
        pixels = torch.nn.functional.interpolate(pixels, size=(image_size, image_size), mode="bilinear",
                                                 align_corners=False, antialias=True)
    rows = pixels.reshape(pixels.shape[0], -1).numpy()
    rows = rows - rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a uniform image cannot be centred and scaled to unit norm")
    return rows / norms


def load_tasks(dataset_dir: str | os.PathLike, split: str, n_tasks: int, ways: int, shots: int,
               queries: int, seed: int, image_size: int) -> TaskTensors:
    """Draw ``n_tasks`` tasks from ``split`` of the store (task ``i`` depends only on ``(seed, i)``)."""
    if n_tasks < 1 or queries < 1:
        raise ValueError(f"need at least one task and one query per class, got tasks={n_tasks}, queries={queries}")
    data = open_split(dataset_dir, split)
    batch = TaskSampler(data.labels, n_way=ways, n_shot=shots, n_query=queries, seed=seed).stack(n_tasks)
    eye = np.eye(ways)

    def rows(pixels: np.ndarray) -> np.ndarray:
        return input_rows(np.asarray(pixels), image_size)

    def tensors(index: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = stacked_images(data.images, index, rows)
        return torch.from_numpy(x), torch.from_numpy(eye[labels]), torch.from_numpy(labels)

    query_x, query_y, query_labels = tensors(batch.query, batch.query_labels)
    support_x, support_y, support_labels = tensors(batch.support, batch.support_labels)
    return TaskTensors(query_x, query_y, query_labels, support_x, support_y, support_labels)

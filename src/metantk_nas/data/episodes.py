"""Few-shot task sampling: N-way K-shot Q-query tasks drawn from one split's labels.

Task ``i`` of seed ``s`` is drawn from its own generator ``np.random.default_rng([s, i])``,
so it is the same whatever order tasks are requested in, however they are batched and in
whichever worker process they are built (no shared RNG state, unlike the official loader
that re-seeds numpy's global RNG per item).

The one task-batch builder: :meth:`TaskSampler.stack` gives a :class:`TaskBatch` (index arrays,
task-major) and :func:`stacked_images` turns one of its index arrays into a (tasks, images, ...) batch
with one call of a transform. The search (MetaNTK tasks), the kernel command and the theory tasks build
their inputs this way; evaluation uses the index arrays too, but its images come from a feature bank
(queries) and per-task augmentation generators (supports), see ``metantk_nas.evaluate.features``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

Batch = TypeVar("Batch")


@dataclass(frozen=True)
class Task:
    """Indices into a split, class-major (class 0's shots, then class 1's, ...)."""

    support: np.ndarray
    query: np.ndarray
    support_labels: np.ndarray
    query_labels: np.ndarray
    classes: np.ndarray

    def tiled_support(self, n_aug: int) -> tuple[np.ndarray, np.ndarray]:
        """Support indices and labels repeated ``n_aug`` times (whole set tiled, as RFS does),
        so each copy can get its own augmentation."""
        if n_aug < 1:
            raise ValueError(f"n_aug must be at least 1, got {n_aug}")
        return np.tile(self.support, n_aug), np.tile(self.support_labels, n_aug)


@dataclass(frozen=True)
class TaskBatch:
    """Tasks stacked task-major: ``query`` (T, ways·queries) and ``support`` (T, ways·shots) indices into the
    split, and their labels 0..ways-1 (class-major inside a task, as :class:`Task`).

    Flattened row by row, ``query`` then ``support`` is the official MetaNTK row order (all queries task by
    task, then all supports, §2.1).
    """

    query: np.ndarray
    support: np.ndarray
    query_labels: np.ndarray
    support_labels: np.ndarray

    @property
    def n_tasks(self) -> int:
        return int(self.query.shape[0])

    def tiled_support(self, n_aug: int) -> tuple[np.ndarray, np.ndarray]:
        """Per task, :meth:`Task.tiled_support`: (T, n_aug·ways·shots) indices and labels."""
        if n_aug < 1:
            raise ValueError(f"n_aug must be at least 1, got {n_aug}")
        return np.tile(self.support, (1, n_aug)), np.tile(self.support_labels, (1, n_aug))


def stacked_images(images: Any, index: np.ndarray, transform: Callable[[np.ndarray], Batch]) -> Batch:
    """``transform`` applied once to ``images[index]`` in row-major (task-major) order, shaped (T, n, ...).

    One call for all tasks: a random transform draws for every image of the batch at once, in row order,
    so the inputs depend on the seed and the batch alone.
    """
    index = np.asarray(index)
    out = transform(images[index.reshape(-1)])
    return out.reshape(*index.shape, *out.shape[1:])


class TaskSampler:
    """Seeded sampler of N-way K-shot Q-query tasks over ``labels`` (contiguous class ids)."""

    def __init__(self, labels: np.ndarray, n_way: int, n_shot: int, n_query: int, seed: int) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}")
        if min(n_way, n_shot) < 1 or n_query < 0:
            raise ValueError(f"need n_way ≥ 1, n_shot ≥ 1, n_query ≥ 0; got {n_way}, {n_shot}, {n_query}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        order = np.argsort(labels, kind="stable")
        classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        if classes.size < n_way:
            raise ValueError(f"{n_way}-way tasks need at least {n_way} classes, the split has {classes.size}")
        eligible = counts >= n_shot + n_query
        if not eligible.all():
            raise ValueError(
                f"{n_shot}-shot {n_query}-query tasks need {n_shot + n_query} images per class; "
                f"classes {classes[~eligible][:10].tolist()} have fewer ({counts[~eligible].min()})"
            )
        self.n_way, self.n_shot, self.n_query, self.seed = n_way, n_shot, n_query, seed
        self._classes = classes
        self._members = [order[start:start + count] for start, count in zip(starts, counts)]

    def task(self, index: int) -> Task:
        """Task ``index``: depends only on ``(seed, index)``."""
        if index < 0:
            raise ValueError(f"task index must be non-negative, got {index}")
        rng = np.random.default_rng([self.seed, index])
        chosen = rng.choice(self._classes.size, size=self.n_way, replace=False)
        support, query = [], []
        for position in chosen:
            picks = rng.choice(self._members[position], size=self.n_shot + self.n_query, replace=False)
            support.append(picks[:self.n_shot])
            query.append(picks[self.n_shot:])
        ways = np.arange(self.n_way, dtype=np.int64)
        return Task(
            support=np.concatenate(support).astype(np.int64),
            query=np.concatenate(query).astype(np.int64),
            support_labels=np.repeat(ways, self.n_shot),
            query_labels=np.repeat(ways, self.n_query),
            classes=self._classes[chosen].astype(np.int64),
        )

    def stack(self, n_tasks: int, start: int = 0) -> TaskBatch:
        """Tasks ``start .. start+n_tasks-1`` stacked into one :class:`TaskBatch`."""
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be positive, got {n_tasks}")
        tasks = [self.task(i) for i in range(start, start + n_tasks)]
        return TaskBatch(*(np.stack([getattr(task, name) for task in tasks])
                           for name in ("query", "support", "query_labels", "support_labels")))

    def batches(self, n_tasks: int, batch_size: int, start: int = 0) -> Iterator[list[Task]]:
        """Tasks ``start .. start+n_tasks-1`` in lists of ``batch_size`` (the last may be shorter)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for first in range(start, start + n_tasks, batch_size):
            yield [self.task(i) for i in range(first, min(first + batch_size, start + n_tasks))]

"""Task sampling: structure, and independence from order, batching and worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from metantk_nas.data.episodes import TaskSampler, stacked_images

LABELS = np.repeat(np.arange(12), 9)[np.random.default_rng(0).permutation(108)]


def _tasks(indices, seed=3):
    sampler = TaskSampler(LABELS, n_way=5, n_shot=2, n_query=3, seed=seed)
    return [sampler.task(i) for i in indices]


def _fingerprint(task):
    return (task.support.tolist(), task.query.tolist(), task.classes.tolist())


def test_task_structure():
    task = _tasks([0])[0]
    assert task.support.shape == (10,) and task.query.shape == (15,)
    assert task.support_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert task.query_labels.tolist() == sorted([0, 1, 2, 3, 4] * 3)
    assert len(set(task.classes.tolist())) == 5
    np.testing.assert_array_equal(LABELS[task.support], task.classes[task.support_labels])
    np.testing.assert_array_equal(LABELS[task.query], task.classes[task.query_labels])
    assert not set(task.support.tolist()) & set(task.query.tolist())
    support, labels = task.tiled_support(3)
    np.testing.assert_array_equal(support, np.tile(task.support, 3))
    np.testing.assert_array_equal(labels, np.tile(task.support_labels, 3))


def test_order_and_batch_independence():
    forward = [_fingerprint(t) for t in _tasks(range(20))]
    backward = [_fingerprint(t) for t in _tasks(range(19, -1, -1))][::-1]
    assert forward == backward
    sampler = TaskSampler(LABELS, 5, 2, 3, seed=3)
    for size in (1, 3, 7):
        batched = [_fingerprint(t) for batch in sampler.batches(20, size) for t in batch]
        assert batched == forward
    assert [_fingerprint(t) for t in _tasks(range(20), seed=4)] != forward
    assert len({str(f) for f in forward}) == 20


def test_stacked_batch_is_task_major():
    """The one task-batch builder: index arrays task by task, images transformed in one call in that order."""
    sampler = TaskSampler(LABELS, 5, 2, 3, seed=3)
    batch = sampler.stack(4, start=2)
    tasks = _tasks(range(2, 6))
    assert batch.n_tasks == 4 and batch.query.shape == (4, 15) and batch.support.shape == (4, 10)
    for name in ("query", "support", "query_labels", "support_labels"):
        np.testing.assert_array_equal(getattr(batch, name), np.stack([getattr(t, name) for t in tasks]))
    support, labels = batch.tiled_support(3)
    np.testing.assert_array_equal(support, np.stack([t.tiled_support(3)[0] for t in tasks]))
    np.testing.assert_array_equal(labels, np.stack([t.tiled_support(3)[1] for t in tasks]))
    images = np.arange(len(LABELS))[:, None] * np.array([[1, -1]])  # image i = (i, -i)
    calls = []

    def transform(pixels):
        calls.append(len(pixels))
        return pixels + 1000

    out = stacked_images(images, batch.query, transform)
    assert calls == [60] and out.shape == (4, 15, 2)
    np.testing.assert_array_equal(out[..., 0], batch.query + 1000)  # row (task, image) holds that image
    # flattened, the rows are the official order: task 0's queries, then task 1's, ...
    np.testing.assert_array_equal(out.reshape(-1, 2)[:, 0] - 1000, np.concatenate([t.query for t in tasks]))
    with pytest.raises(ValueError, match="n_tasks"):
        sampler.stack(0)


def _fingerprints_in_worker(indices):
    return [_fingerprint(t) for t in _tasks(indices)]


def test_worker_independence():
    expected = [_fingerprint(t) for t in _tasks(range(12))]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_fingerprints_in_worker, [range(0, 12, 2), range(1, 12, 2)]))
    got = [None] * 12
    got[0::2], got[1::2] = parts
    assert got == expected


def test_invalid_requests():
    with pytest.raises(ValueError, match="13-way tasks need at least 13 classes"):
        TaskSampler(LABELS, 13, 1, 1, seed=0)
    with pytest.raises(ValueError, match="need 10 images per class"):
        TaskSampler(LABELS, 5, 5, 5, seed=0)
    with pytest.raises(ValueError, match="n_aug"):
        _tasks([0])[0].tiled_support(0)

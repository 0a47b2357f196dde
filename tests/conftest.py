"""Shared pytest configuration and fixtures.

* ``one_thread``: torch on one thread for a whole module (``pytestmark = pytest.mark.usefixtures("one_thread")``).
* ``random_store`` / ``tiny_model``: a store of random 16×16 images and a network trained on it for one
  epoch, built once per session (nothing may change them; copy them first).
* ``strict_json``: parse JSON text the way a strict parser does (no ``NaN``, no ``Infinity``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# Under pytest-xdist each worker gets its share of the cores (set before torch is imported; subprocesses
# inherit it): N workers with every core each would oversubscribe the machine N times.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Torch on one thread for the module, restored afterwards: on an oversubscribed 2-core machine two
    spinning OpenMP threads made a forward+backward 40× slower, and one thread is deterministic."""
    with _torch_threads(1):
        yield


@pytest.fixture(scope="session")
def random_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 classes × 12 random 16×16 images in each of train/val/test."""
    from _train_helpers import write_random_store

    return write_random_store(tmp_path_factory.mktemp("random-store") / "random")


@pytest.fixture(scope="session")
def tiny_model(random_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(model.pt, store)``: the test genotype at 4 channels and 3 cells, trained one epoch on ``random_store``."""
    from _train_helpers import genotype

    from metantk_nas.train.config import TrainConfig
    from metantk_nas.train.loop import train

    cfg = TrainConfig(epochs=1, decay_epochs=(), batch_size=16, channels=4, cells=3, device="cpu")
    with _torch_threads(1):
        model = train(cfg, genotype(), random_store, tmp_path_factory.mktemp("tiny-model"), progress=False)
    return model, random_store


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"not standard JSON: {name}")


@pytest.fixture()
def strict_json() -> Callable[[str], Any]:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (Python's parser accepts them)."""
    return lambda text: json.loads(text, parse_constant=_refuse_constant)

"""Device selection and GPU claiming for jobs that Snakemake schedules with ``gpu=1``.

Snakemake counts GPUs but never says which one a job gets. With several local GPUs
each GPU job claims a free device itself through a lock file and exports
``CUDA_VISIBLE_DEVICES`` for its own process before CUDA initialises.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

_LOCK_DIR = Path(os.environ.get("METANTK_GPU_LOCK_DIR", "/tmp/metantk-nas-gpu-locks"))


def _visible_gpu_ids() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else all that nvidia-smi lists."""
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        return [gpu for gpu in preset.split(",") if gpu.strip() not in {"", "-1"}]
    try:
        count = len([line for line in Path("/proc/driver/nvidia/gpus").iterdir()])
    except OSError:
        return []
    return [str(i) for i in range(count)]


@contextlib.contextmanager
def claim_gpu(lock_dir: Path = _LOCK_DIR) -> Iterator[str | None]:
    """Hold an exclusive lock on one free GPU for the duration of the block.

    Sets ``CUDA_VISIBLE_DEVICES`` to the claimed id so that ``cuda:0`` is that GPU.
    Yields ``None`` (and changes nothing) on a machine without GPUs. On SLURM the
    scheduler already restricts the job to its GPUs, so the first is always free.
    """
    gpus = _visible_gpu_ids()
    if not gpus:
        yield None
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    handles = []
    try:
        while True:
            for gpu in gpus:
                handle = open(lock_dir / f"gpu{gpu}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                handles.append(handle)
                os.environ["CUDA_VISIBLE_DEVICES"] = gpu
                yield gpu
                return
            # All busy (more jobs than --resources gpu=N allows): wait for the first.
            handle = open(lock_dir / f"gpu{gpus[0]}.lock", "w")
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.close()
    finally:
        for handle in handles:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def check_device(preference: str) -> None:
    """Refuse a device setting other than ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (key named)."""
    if preference not in {"auto", "cpu", "cuda"} and not (preference.startswith("cuda:") and preference[5:].isdigit()):
        raise ValueError(f"key 'device' must be one of ['auto', 'cpu', 'cuda', 'cuda:N'], got {preference!r}")


def select_device(preference: str = "auto"):
    """Return a ``torch.device``: ``auto`` means CUDA when available, else CPU."""
    import torch

    check_device(preference)
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but CUDA is not available")
    return torch.device(preference)

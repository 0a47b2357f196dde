"""Device selection: the one place where a process claims a GPU.

Snakemake counts GPUs (``--resources gpu=N``) but never says which one a job gets, so every command that
may run on a GPU (search, train, evaluate, theory, kernel) calls :func:`select_device`, and for ``auto``
and ``cuda`` that first claims a free GPU for the whole process: an exclusive ``flock`` on
``<lock dir>/gpu<ID>.lock`` (``$METANTK_GPU_LOCK_DIR``, default ``/tmp/metantk-nas-gpu-locks``), held
until the process ends, and ``CUDA_VISIBLE_DEVICES=<ID>`` so that ``cuda`` is that GPU. The visible GPUs
are read from ``CUDA_VISIBLE_DEVICES`` or ``/proc/driver/nvidia/gpus``, never through CUDA: the first CUDA
call (``torch.cuda.is_available()`` included) fixes the visible devices for the life of the process, so
:func:`select_device` must run before anything touches CUDA. When every GPU is taken (more GPU jobs than
GPUs) the claim waits for the first to be freed. ``cuda:N`` names a device explicitly and claims nothing.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

DEFAULT_LOCK_DIR = Path("/tmp/metantk-nas-gpu-locks")
#: Seconds between two looks for a freed GPU while every GPU is claimed.
POLL_SECONDS = 1.0


def lock_dir() -> Path:
    """Where the per-GPU lock files live (``$METANTK_GPU_LOCK_DIR`` or :data:`DEFAULT_LOCK_DIR`)."""
    return Path(os.environ.get("METANTK_GPU_LOCK_DIR", DEFAULT_LOCK_DIR))


def visible_gpu_ids() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU the driver lists."""
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        return [gpu.strip() for gpu in preset.split(",") if gpu.strip() not in {"", "-1"}]
    try:
        count = len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    except OSError:
        return []
    return [str(i) for i in range(count)]


@dataclass
class GpuClaim:
    """One claimed GPU: the lock stays held while ``handle`` is open (a process that dies releases it)."""

    gpu: str
    index: int  # position of ``gpu`` among the GPUs visible when it was claimed
    handle: IO[str] | None = field(repr=False)

    def release(self) -> None:
        """Free the GPU for other processes."""
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> GpuClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def claim_gpu(gpus: Sequence[str] | None = None, directory: Path | None = None,
              poll_seconds: float = POLL_SECONDS, timeout: float | None = None) -> GpuClaim | None:
    """Lock the first free GPU of ``gpus`` (default :func:`visible_gpu_ids`); ``None`` when there is none.

    With every GPU locked it waits, looking again every ``poll_seconds``, and takes the first one freed
    (``None`` after ``timeout`` seconds, if given). Changes no environment variable (:func:`select_device`
    does, for the process's own claim).
    """
    gpus = list(visible_gpu_ids() if gpus is None else gpus)
    if not gpus:
        return None
    directory = lock_dir() if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while True:
        for index, gpu in enumerate(gpus):
            handle = open(directory / f"gpu{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return GpuClaim(gpu, index, handle)
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if not waiting:
            print(f"metantk-nas: every GPU ({', '.join(gpus)}) is claimed by another job; waiting for one",
                  file=sys.stderr, flush=True)
            waiting = True
        time.sleep(poll_seconds)


#: This process's claim, made once by :func:`select_device` and held until the process ends.
_PROCESS_CLAIM: GpuClaim | None = None


def _claim_for_process() -> int | None:
    """The CUDA index of this process's GPU, claiming one on the first call; ``None`` without GPUs."""
    global _PROCESS_CLAIM
    if _PROCESS_CLAIM is None:
        claim = claim_gpu()
        if claim is None:
            return None
        import torch

        if torch.cuda.is_initialized():  # too late to narrow the visible devices: address the GPU by position
            print(f"metantk-nas: claimed GPU {claim.gpu} (cuda:{claim.index})", file=sys.stderr, flush=True)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = claim.gpu
            claim.index = 0
            print(f"metantk-nas: claimed GPU {claim.gpu}", file=sys.stderr, flush=True)
        _PROCESS_CLAIM = claim
    return _PROCESS_CLAIM.index


def _release_process_claim() -> None:
    global _PROCESS_CLAIM
    if _PROCESS_CLAIM is not None:
        _PROCESS_CLAIM.release()
        _PROCESS_CLAIM = None


def check_device(preference: str) -> None:
    """Refuse a device setting other than ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (key named)."""
    if preference not in {"auto", "cpu", "cuda"} and not (preference.startswith("cuda:") and preference[5:].isdigit()):
        raise ValueError(f"key 'device' must be one of ['auto', 'cpu', 'cuda', 'cuda:N'], got {preference!r}")


def select_device(preference: str = "auto") -> Any:
    """Return a ``torch.device``; ``auto`` means CUDA when available, else CPU.

    ``auto`` and ``cuda`` first claim a free GPU for the process (see the module docstring); a second call
    returns the same GPU.
    """
    import torch

    check_device(preference)
    if preference == "cpu":
        return torch.device("cpu")
    if preference in ("auto", "cuda"):
        index = _claim_for_process()
        if torch.cuda.is_available():
            return torch.device("cuda" if not index else f"cuda:{index}")
        _release_process_claim()  # GPUs listed by the driver but unusable here: hold none of them
        if preference == "auto":
            return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} requested but CUDA is not available")
    return torch.device(preference)

"""GPU claims in a fake multi-GPU environment (no CUDA needed): one claim per process, free GPUs first,
waiting when every GPU is taken, and the claim made by select_device before CUDA is touched."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from metantk_nas import device


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Two visible GPUs, ids 3 and 5, with a private lock folder; this process holds no claim."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setenv("METANTK_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(device, "_PROCESS_CLAIM", None)
    yield tmp_path / "locks"
    device._release_process_claim()


def test_visible_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 7,")
    assert device.visible_gpu_ids() == ["2", "7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert device.visible_gpu_ids() == []
    assert device.claim_gpu() is None  # nothing to claim


def test_two_claims_get_two_gpus_and_a_third_waits(fake_gpus: Path) -> None:
    first, second = device.claim_gpu(), device.claim_gpu()
    assert (first.gpu, first.index, second.gpu, second.index) == ("3", 0, "5", 1)
    assert sorted(p.name for p in fake_gpus.iterdir()) == ["gpu3.lock", "gpu5.lock"]
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(device.claim_gpu(poll_seconds=0.02).gpu))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # every GPU is taken: it waits
    second.release()
    waiter.join(5)
    assert got == ["5"]  # the GPU that was freed
    first.release()
    with device.claim_gpu() as again:
        assert again.gpu == "3"
    assert again.handle is None


def test_another_process_sees_the_claim(fake_gpus: Path) -> None:
    code = "from metantk_nas.device import claim_gpu; print(claim_gpu().gpu)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with device.claim_gpu():
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "5"


def test_select_device_claims_once_for_the_process(fake_gpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert device.select_device("cpu") == torch.device("cpu") and device._PROCESS_CLAIM is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    held = device.claim_gpu()  # another job holds GPU 3
    assert device.select_device("auto") == torch.device("cuda")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"  # set for this process before CUDA starts
    assert device.select_device("cuda") == torch.device("cuda")  # the same claim, not a second one
    assert device._PROCESS_CLAIM.gpu == "5"
    assert device.claim_gpu(["3", "5"], poll_seconds=0.01, timeout=0.1) is None  # both held
    held.release()
    assert device.select_device("cuda:1") == torch.device("cuda:1")  # explicit: no claim of its own


def test_select_device_addresses_the_gpu_by_position_once_cuda_started(fake_gpus: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    held = device.claim_gpu()
    assert device.select_device("auto") == torch.device("cuda:1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"  # too late to change: left alone
    held.release()


def test_no_usable_cuda_releases_the_claim(fake_gpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.select_device("auto") == torch.device("cpu")
    assert device._PROCESS_CLAIM is None
    with pytest.raises(ValueError, match="CUDA is not available"):
        device.select_device("cuda")
    assert device.claim_gpu().gpu == "3"  # nothing left locked

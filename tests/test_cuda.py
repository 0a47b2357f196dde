"""Checks on a CUDA device (``pytest -m cuda``, run first by ``make gpu-check``; skipped without CUDA):
device selection and GPU claims in fresh processes, an AMP training step and ``train`` on CUDA, the kernel
backends on CUDA against CPU float64, and the evaluation on CUDA against the CPU."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metantk_nas import device

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

#: A process that claims a GPU through select_device, prints what it got, and holds it until stdin closes.
HOLDER = """
import os, sys, torch
from metantk_nas.device import select_device
d = select_device(sys.argv[1])
torch.ones(1, device=d)
print(os.environ.get("CUDA_VISIBLE_DEVICES"), d.type, torch.cuda.device_count(),
      torch.cuda.get_device_properties(d).uuid, flush=True)
sys.stdin.read()
"""
#: A process that tries to claim a GPU for half a second and prints the id it got, or None.
PROBE = "from metantk_nas.device import claim_gpu; c = claim_gpu(timeout=0.5); print(c and c.gpu)"


def _env(locks: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "METANTK_GPU_LOCK_DIR": str(locks)}


def _hold(locks: Path, preference: str = "cuda") -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, preference], env=_env(locks), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().split()


def _release(process: subprocess.Popen) -> None:
    process.stdin.close()
    assert process.wait(timeout=60) == 0


def _probe(locks: Path) -> str:
    return subprocess.run([sys.executable, "-c", PROBE], env=_env(locks), capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


@pytest.fixture
def own_claim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """In-process select_device claims from a private lock folder, released (and the visible GPUs restored)
    after the test, so that the subprocess claims of other tests never wait for this process."""
    monkeypatch.setenv("METANTK_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(device, "_PROCESS_CLAIM", None)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    yield
    device._release_process_claim()
    if visible is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible


@pytest.mark.parametrize("preference", ["auto", "cuda"])
def test_select_device_claims_one_gpu_and_runs_on_it(tmp_path: Path, preference: str) -> None:
    process, (gpu, kind, count, _) = _hold(tmp_path / "locks", preference)
    try:
        assert kind == "cuda" and count == "1"  # CUDA_VISIBLE_DEVICES narrowed to the claimed GPU
        assert gpu in device.visible_gpu_ids()
        assert (tmp_path / "locks" / f"gpu{gpu}.lock").exists()
    finally:
        _release(process)


def test_a_claimed_gpu_is_not_claimed_again_until_released(tmp_path: Path) -> None:
    gpus = device.visible_gpu_ids()
    holders = [_hold(tmp_path / "locks") for _ in gpus]
    try:
        claimed = [info[0] for _, info in holders]
        assert sorted(claimed) == sorted(gpus)  # several GPUs: one each
        assert len({info[3] for _, info in holders}) == len(gpus)  # and really different devices
        assert _probe(tmp_path / "locks") == "None"  # every GPU taken
    finally:
        first, info = holders[0]
        _release(first)
    assert _probe(tmp_path / "locks") == info[0]  # the freed one
    for process, _ in holders[1:]:
        _release(process)


def test_amp_training_step_on_cuda() -> None:
    """The step of train/loop.py: bf16 autocast forward, float32 loss, backward, SGD step."""
    from _train_helpers import genotype

    from metantk_nas.space import FinalNetwork

    torch.manual_seed(0)
    model = FinalNetwork(genotype(), C=8, n_cells=3, num_classes=6).cuda().to(memory_format=torch.channels_last).train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    x = torch.rand(16, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 6, (16,), device="cuda")
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        logits = model(x)
        loss = F.cross_entropy(logits.float(), labels)
    assert logits.dtype == torch.bfloat16
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    assert torch.isfinite(loss)
    assert sum(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)) > len(before) // 2


@pytest.mark.parametrize("amp", [False, True])
def test_train_on_cuda(random_store: Path, tmp_path: Path, own_claim: None, amp: bool) -> None:
    from _train_helpers import genotype

    from metantk_nas.space.checkpoint import load_model
    from metantk_nas.train.config import TrainConfig
    from metantk_nas.train.loop import train

    cfg = TrainConfig(epochs=2, decay_epochs=(), batch_size=16, channels=4, cells=3, device="cuda", amp=amp)
    model_path = train(cfg, genotype(), random_store, tmp_path / "out", progress=False)
    summary = json.loads((tmp_path / "out" / "train.json").read_text())
    assert summary["epochs"] == 2 and np.isfinite(summary["final"]["loss"]) and summary["final"]["images_per_s"] > 0
    model, _ = load_model(model_path, "cuda")
    assert np.isfinite(model(torch.rand(2, 3, 16, 16, device="cuda")).detach().cpu().numpy()).all()


@pytest.fixture
def strict_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TF32 in convolutions or matmuls: the float32 the CPU comparison is about."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def test_kernel_backends_on_cuda_match_cpu_float64(strict_float32: None) -> None:
    """Each backend's NTK and MetaNTK condition number on CUDA within max(1e-3, 3× the CPU float32 error)
    of the float64 CPU value (the tolerance of benchmarks/gpu_check.py)."""
    from metantk_nas.kernels import make_head, metantk_condition, ntk_condition
    from metantk_nas.space import SearchSupernet

    torch.manual_seed(0)
    net = SearchSupernet(C=8, n_cells=3, num_classes=10, norm="group").train()
    head = make_head(net.num_features, 5, torch.Generator().manual_seed(1))
    images = torch.rand(30, 3, 16, 16, generator=torch.Generator().manual_seed(2))

    def conditions(model, fresh_head, x, backend):
        tasks = x.reshape(3, 2, 5, *x.shape[1:])
        return (ntk_condition(model, x, backend=backend).value,
                metantk_condition(model, tasks[:, 0], tasks[:, 1], head=fresh_head, backend=backend).value)

    reference = conditions(copy.deepcopy(net).double(), copy.deepcopy(head).double(), images.double(), "gram")
    cpu = conditions(net, head, images, "auto")
    tolerance = [max(1e-3, 3 * abs(c - r) / r) for c, r in zip(cpu, reference, strict=True)]
    gpu = (copy.deepcopy(net).cuda(), copy.deepcopy(head).cuda(), images.cuda())
    for backend in ("loop", "opacus", "func", "gram"):
        values = conditions(*gpu, backend)
        errors = [abs(v - r) / r for v, r in zip(values, reference, strict=True)]
        assert errors[0] <= tolerance[0] and errors[1] <= tolerance[1], (backend, errors, tolerance)


@pytest.mark.parametrize("amp", [False, True])
def test_evaluation_on_cuda_matches_cpu(tiny_model: tuple[Path, Path], own_claim: None, amp: bool) -> None:
    """Features (as evaluation runs: torch's default flags, cuDNN TF32 on) and accuracies on CUDA against
    the CPU in float32; bf16 features within 1 % (cosine), accuracies within 2 points over 500 queries."""
    from metantk_nas.data.store import open_split
    from metantk_nas.evaluate.config import EvalConfig
    from metantk_nas.evaluate.features import FeatureExtractor
    from metantk_nas.evaluate.fewshot import evaluate
    from metantk_nas.space.checkpoint import load_model

    model_path, store = tiny_model
    images = open_split(store, "test").images
    banks = []
    for where, half in (("cpu", False), ("cuda", amp)):
        model, meta = load_model(model_path, where)
        norm = meta["normalization"]
        banks.append(FeatureExtractor(model, norm["mean"], norm["std"], torch.device(where), amp=half).bank(images))
    cosine = (banks[0] * banks[1]).sum(axis=1)
    assert cosine.min() >= (0.99 if amp else 0.9999)
    cfg = EvalConfig(shots=(1, 5), tasks=20, queries=5, device="cpu")
    cpu = evaluate(cfg, model_path, store, progress=False)
    gpu = evaluate(dataclasses.replace(cfg, device="cuda", amp=amp), model_path, store, progress=False)
    for shot in (1, 5):
        assert abs(cpu[shot]["mean"] - gpu[shot]["mean"]) <= (0.02 if amp else 0.01)

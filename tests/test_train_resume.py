"""A killed training run resumes to bit-identical weights; bad checkpoints are refused clearly."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from _train_helpers import genotype, write_random_store
from metantk_nas.space import load_genotype
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train

CFG = TrainConfig(epochs=3, batch_size=16, channels=4, cells=3, decay_epochs=(2,), drop_path=0.2, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Deterministic and much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_random_store(tmp_path_factory.mktemp("store") / "random")


@pytest.fixture(scope="module")
def reference(store, tmp_path_factory):
    """An uninterrupted run: its final weights and metrics."""
    out = tmp_path_factory.mktemp("reference")
    path = train(CFG, genotype(), store, out, progress=False)
    return torch.load(path, weights_only=True), (out / "metrics.csv").read_text()


def _assert_same_weights(model_file: Path, reference_state: dict) -> None:
    state = torch.load(model_file, weights_only=True)
    assert state["model"].keys() == reference_state["model"].keys()
    for key, value in reference_state["model"].items():
        assert torch.equal(state["model"][key], value), key


def _losses(csv_text: str) -> list[list[str]]:
    return [line.split(",")[:5] for line in csv_text.splitlines()]  # epoch, loss, acc, lr, drop_path


def test_resume_after_crash_mid_epoch_is_bit_identical(store, reference, tmp_path, monkeypatch):
    steps_per_epoch = 72 // 16
    calls = {"n": 0}
    original_step = torch.optim.SGD.step

    def crashing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == steps_per_epoch + 2:  # in the middle of epoch 2
            raise KeyboardInterrupt("simulated kill")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, genotype(), store, tmp_path, progress=False)
    monkeypatch.setattr(torch.optim.SGD, "step", original_step)
    assert torch.load(tmp_path / "work" / "ckpt_last.pt", weights_only=True)["epoch"] == 1
    assert not (tmp_path / "model.pt").exists()

    path = train(CFG, genotype(), store, tmp_path, progress=False)
    _assert_same_weights(path, reference[0])
    assert _losses((tmp_path / "metrics.csv").read_text()) == _losses(reference[1])


def test_resume_after_sigkill_is_bit_identical(store, reference, tmp_path):
    """A real process, killed with SIGKILL right after its first checkpoint appears."""
    cfg = CFG.to_dict()
    command = [sys.executable, "-m", "metantk_nas.cli", "train", "--genotype", "metantk-nas/mini-5cell-1",
               "--dataset", str(store), "--out", str(tmp_path), "--epochs", str(cfg["epochs"]),
               "--batch-size", str(cfg["batch_size"]), "--channels", str(cfg["channels"]), "--cells", str(cfg["cells"]),
               "--decay-epochs", *map(str, cfg["decay_epochs"]), "--drop-path", str(cfg["drop_path"]),
               "--device", "cpu", "--no-progress"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "work" / "ckpt_last.pt"
    deadline = time.monotonic() + 90
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert checkpoint.exists(), stderr.decode()[-2000:]
    assert not (tmp_path / "model.pt").exists()  # killed before the end

    path = train(CFG, genotype(), store, tmp_path, progress=False)
    _assert_same_weights(path, reference[0])


@pytest.fixture()
def checkpoint(store, tmp_path_factory):
    """A finished run's work directory, copied so each test may spoil it."""
    source = tmp_path_factory.getbasetemp() / "finished"
    if not source.exists():
        train(TrainConfig(**{**CFG.to_dict(), "epochs": 1, "decay_epochs": ()}), genotype(), store, source, progress=False)
    target = tmp_path_factory.mktemp("copy")
    shutil.copytree(source / "work", target / "work")
    return target


def test_corrupted_checkpoint_is_refused(store, checkpoint):
    ckpt = checkpoint / "work" / "ckpt_last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"ckpt_last\.pt: corrupted or unreadable checkpoint"):
        train(CFG, genotype(), store, checkpoint, progress=False)


def test_foreign_file_is_refused(store, checkpoint):
    torch.save({"model": {}, "epoch": 3}, checkpoint / "work" / "ckpt_last.pt")
    with pytest.raises(ValueError, match="not a metantk-nas training checkpoint"):
        train(CFG, genotype(), store, checkpoint, progress=False)


def test_checkpoint_of_other_architecture_is_refused(store, checkpoint):
    with pytest.raises(ValueError, match="another architecture"):
        train(CFG, load_genotype("metanas/v1"), store, checkpoint, progress=False)


def test_checkpoint_of_other_config_is_refused(store, checkpoint):
    other = TrainConfig(**{**CFG.to_dict(), "epochs": 1, "decay_epochs": (), "lr": 0.5})
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['lr'\]\)"):
        train(other, genotype(), store, checkpoint, progress=False)

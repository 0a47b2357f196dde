"""A killed training run resumes to bit-identical weights; bad checkpoints are refused clearly."""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _train_helpers import genotype
from metantk_nas.space import load_genotype
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train

CFG = TrainConfig(epochs=3, batch_size=16, channels=4, cells=3, decay_epochs=(2,), drop_path=0.2, device="cpu")
SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(random_store):
    return random_store


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


#: A training process that SIGKILLs itself at a chosen point: after epoch K (``on_epoch_end``), or at
#: optimizer step N (in the middle of an epoch, between two checkpoints).
_KILLED_RUN = """
import json, os, signal, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import torch
from _train_helpers import genotype
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train

torch.set_num_threads(1)
kind, at = sys.argv[5], int(sys.argv[6])
kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
on_epoch_end = (lambda epoch: epoch == at and kill()) if kind == "epoch" else None
if kind == "step":
    calls, step = [0], torch.optim.SGD.step
    def killing_step(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == at:
            kill()
        return step(self, *args, **kwargs)
    torch.optim.SGD.step = killing_step
train(TrainConfig.from_dict(json.loads(sys.argv[7])), genotype(), sys.argv[3], sys.argv[4], progress=False,
      on_epoch_end=on_epoch_end)
"""


@pytest.mark.parametrize("kind, at, finished_epoch", [("epoch", 1, 1), ("step", 72 // 16 + 3, 1)],
                         ids=["after-epoch-1", "mid-epoch-2"])
def test_resume_after_sigkill_is_bit_identical(store, reference, tmp_path, kind, at, finished_epoch):
    """A real process, SIGKILLed at a fixed point of its training (no timing involved), then resumed."""
    process = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(SRC), str(TESTS), str(store), str(tmp_path), kind, str(at),
         json.dumps(CFG.to_dict())], capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    checkpoint = torch.load(tmp_path / "work" / "ckpt_last.pt", weights_only=True)
    assert checkpoint["epoch"] == finished_epoch
    assert not (tmp_path / "model.pt").exists()

    path = train(CFG, genotype(), store, tmp_path, progress=False)
    _assert_same_weights(path, reference[0])
    assert _losses((tmp_path / "metrics.csv").read_text()) == _losses(reference[1])


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

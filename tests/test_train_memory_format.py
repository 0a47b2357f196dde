"""On the CPU training runs in NCHW whatever `train.channels_last` says: oneDNN's channels_last training aborted
with "double free or corruption" at 84×84 and C = 4 (torch 2.14.1); `channels_last` applies on CUDA
(tests/test_cuda.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _train_helpers import genotype
from metantk_nas.space.final import FinalNetwork
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_on_the_cpu_runs_in_nchw(random_store: Path, tmp_path: Path,
                                                                   monkeypatch, one_thread: None,
                                                                   channels_last: bool) -> None:
    seen = []
    forward = FinalNetwork.forward

    def spy(self, x):
        seen.append((x.is_contiguous(memory_format=torch.channels_last),
                     self.stem[0].weight.is_contiguous(memory_format=torch.channels_last)))
        return forward(self, x)

    monkeypatch.setattr(FinalNetwork, "forward", spy)
    cfg = TrainConfig(epochs=1, batch_size=36, channels=4, cells=3, decay_epochs=(), device="cpu",
                      channels_last=channels_last)
    model = train(cfg, genotype(), random_store, tmp_path, progress=False)
    assert seen and set(seen) == {(False, False)}
    # the saved weights load into a plain (NCHW) network
    state = torch.load(model, weights_only=True)["model"]
    FinalNetwork(genotype(), C=4, n_cells=3, num_classes=6).load_state_dict(state)

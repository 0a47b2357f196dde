"""`train.channels_last` reaches the network on every device (the CPU included: ×1.2–1.3 per step here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _train_helpers import genotype
from metantk_nas.space.final import FinalNetwork
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train


@pytest.mark.parametrize("channels_last", [True, False])
def test_training_runs_in_the_configured_memory_format_on_the_cpu(random_store: Path, tmp_path: Path,
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
    assert seen and set(seen) == {(channels_last, channels_last)}
    # the saved weights load into a plain (NCHW) network
    state = torch.load(model, weights_only=True)["model"]
    FinalNetwork(genotype(), C=4, n_cells=3, num_classes=6).load_state_dict(state)

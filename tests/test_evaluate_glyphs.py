"""The whole path on the glyph dataset: train a small network on the CPU, evaluate 5-way 5-shot."""

import json

import numpy as np
import pytest

from _train_helpers import genotype
from metantk_nas.cli import main
from metantk_nas.data.glyphs import generate_glyphs
from metantk_nas.data.store import open_split, write_store
from metantk_nas.train.config import TrainConfig
from metantk_nas.train.loop import train

#: Train classes kept from the glyph store: enough to learn stroke features within a CPU test budget.
TRAIN_CLASSES = 64


@pytest.fixture(scope="module")
def glyph_store(tmp_path_factory):
    """A 32×32 glyph store, the training split cut to its first TRAIN_CLASSES classes."""
    root = tmp_path_factory.mktemp("glyphs")
    full = generate_glyphs(root / "full", image_size=32, images_per_class=20, seed=0)
    splits = {}
    for name in ("train", "val", "test"):
        split = open_split(full, name)
        keep = split.labels < TRAIN_CLASSES if name == "train" else np.ones(len(split), bool)
        classes = split.classes[:TRAIN_CLASSES] if name == "train" else split.classes
        splits[name] = (np.array(split.images[keep]), split.labels[keep], classes)
    return write_store(root / "small", "glyphs-small", "glyphs", splits, {})


def test_trained_network_is_far_above_chance_on_glyphs(glyph_store, tmp_path, one_thread):
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, decay_epochs=(5,), drop_path=0.0, crop_padding=2,
                      channels=8, cells=5, device="cpu")
    model = train(cfg, genotype(), glyph_store, tmp_path / "train", progress=False)
    code = main(["evaluate", "--model", str(model), "--dataset", str(glyph_store), "--out", str(tmp_path / "eval"),
                 "--shots", "5", "--tasks", "40", "--queries", "10", "--n-aug", "2", "--device", "cpu",
                 "--no-progress"])
    assert code == 0
    result = json.loads((tmp_path / "eval" / "5shot.json").read_text())
    assert len(result["accuracies"]) == 40 and result["n_shot"] == 5
    assert result["mean"] >= 0.60, result["mean"]
    assert "provenance" in result and result["classifier"] == "lr"

"""Table 1 baselines end to end on a tiny store: meta-training resumes bit-identically after a kill, every
model file is read back by the linear probe, the own protocols run on the cells' tasks."""

from __future__ import annotations

import json

import pytest
import torch

from metantk_nas.baselines.algorithms import ALGORITHMS
from metantk_nas.baselines.config import MAMLConfig, MetaOptNetConfig
from metantk_nas.baselines.episodic import meta_train
from metantk_nas.cli import main
from metantk_nas.space.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

MAML = MAMLConfig(meta_steps=4, meta_batch_1shot=2, queries=2, inner_steps=2, checkpoint_every=1, device="cpu")
METAOPTNET = MetaOptNetConfig(width=0.05, epochs=2, updates_per_epoch=2, meta_batch=2, train_shot=2, queries=2,
                              decay_epochs=(2,), decay_factors=(0.06,), crop_padding=2, checkpoint_every=1,
                              device="cpu")


class Killed(Exception):
    """Stands for a kill right after a checkpoint was written."""


def _weights(model_path):
    return torch.load(model_path, weights_only=True)["model"]


@pytest.mark.parametrize(("name", "cfg", "shot"), [("maml", MAML, 1), ("anil", MAML, 1), ("metaoptnet", METAOPTNET, None)])
def test_meta_training_resumed_after_a_kill_equals_an_uninterrupted_run(random_store, tmp_path, name, cfg, shot):
    algorithm = ALGORITHMS[name]
    reference = meta_train(algorithm, cfg, random_store, tmp_path / "ref", shot=shot, progress=False)

    def kill(update: int) -> None:
        if update == 2:
            raise Killed

    with pytest.raises(Killed):
        meta_train(algorithm, cfg, random_store, tmp_path / "run", shot=shot, progress=False, on_checkpoint=kill)
    assert not (tmp_path / "run" / "model.pt").exists()  # nothing final before the end
    resumed = meta_train(algorithm, cfg, random_store, tmp_path / "run", shot=shot, progress=False)
    expected, got = _weights(reference), _weights(resumed)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    assert summary["updates"] == 4 and summary["episodes"] == 4 * 2 and summary["seconds_per_1000_episodes"] > 0
    assert summary["final"]["update"] == 4


def test_a_per_shot_algorithm_needs_its_shot(random_store, tmp_path):
    with pytest.raises(ValueError, match="--shot is required"):
        meta_train(ALGORITHMS["maml"], MAML, random_store, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="trains once"):
        meta_train(ALGORITHMS["metaoptnet"], METAOPTNET, random_store, tmp_path / "y", shot=1, progress=False)


def test_every_baseline_model_is_read_back_and_probed(random_store, tmp_path):
    """CLI: RFS through the train loop, MAML and MetaOptNet meta-trained; the probe and the own protocols read them."""
    settings = tmp_path / "eval.yaml"
    settings.write_text("evaluate:\n  tasks: 3\n  queries: 2\n  n_aug: 1\n  shots: [1]\n"
                        "maml:\n  inner_steps_test: 2\nmetaoptnet:\n  qp_iterations: 10\n")
    common = ["--dataset", str(random_store), "--threads", "1", "--no-progress"]
    assert main(["baseline", "train", "rfs", *common, "--out", str(tmp_path / "rfs"),
                 "--decay-epochs", "1", "--epochs", "2", "--width", "0.05", "--batch-size", "8",
                 "--device", "cpu"]) == 0
    assert main(["baseline", "train", "maml", *common, "--out", str(tmp_path / "maml"), "--shot", "1",
                 "--meta-steps", "2", "--queries", "2", "--inner-steps", "1", "--device", "cpu"]) == 0
    assert main(["baseline", "train", "metaoptnet", *common, "--out", str(tmp_path / "mon"), "--width", "0.05",
                 "--epochs", "1", "--updates-per-epoch", "1", "--train-shot", "2", "--queries", "2",
                 "--decay-epochs", "1", "--decay-factors", "0.1", "--device", "cpu"]) == 0
    model, meta = load_model(tmp_path / "rfs" / "model.pt")
    assert meta["backbone"] == {"backbone": "resnet12", "width": 0.05, "drop_rate": 0.1}
    assert model.head.out_features == 6  # the training classes of the store
    for name in ("rfs", "maml", "mon"):
        out = tmp_path / f"{name}-probe"
        assert main(["evaluate", "--model", str(tmp_path / name / "model.pt"), "--dataset", str(random_store),
                     "--out", str(out), "--config", str(settings), "--threads", "1", "--no-progress"]) == 0
        probe = json.loads((out / "1shot.json").read_text())
        assert probe["n_tasks"] == 3 and "backbone" in probe
    for algorithm, folder in (("maml", "maml"), ("metaoptnet", "mon")):
        out = tmp_path / f"{folder}-own"
        assert main(["baseline", "evaluate", algorithm, "--model", str(tmp_path / folder / "model.pt"),
                     "--dataset", str(random_store), "--out", str(out), "--config", str(settings),
                     "--threads", "1"]) == 0
        own = json.loads((out / "1shot.json").read_text())
        probe = json.loads((tmp_path / f"{folder}-probe" / "1shot.json").read_text())
        assert own["protocol"] == ALGORITHMS[algorithm].protocol and len(own["accuracies"]) == 3
        # the same tasks as the probe (and as the cells' evaluation): same sampler seed and sizes
        assert (own["seeds"]["tasks"], own["n_queries"], own["n_tasks"]) == (probe["seeds"]["tasks"],
                                                                             probe["n_queries"], probe["n_tasks"])


def test_own_protocols_draw_the_cells_tasks(random_store, tmp_path, monkeypatch):
    """Both evaluations build their tasks with TaskSampler(test labels, n_way, shot, queries, seed)."""
    from metantk_nas.baselines import protocols
    from metantk_nas.data.episodes import TaskSampler
    from metantk_nas.evaluate import fewshot

    drawn = {}

    def recording(name):
        class Recording(TaskSampler):
            def task(self, index):
                task = super().task(index)
                drawn.setdefault(name, []).append((task.support.tolist(), task.query.tolist()))
                return task
        return Recording

    model = meta_train(ALGORITHMS["maml"], MAML.replace(meta_steps=1), random_store, tmp_path / "m", shot=1,
                       progress=False)
    from metantk_nas.evaluate.config import EvalConfig

    cfg = EvalConfig(tasks=4, queries=2, n_aug=1, shots=(1,), seed=3, device="cpu")
    monkeypatch.setattr(protocols, "TaskSampler", recording("own"))
    monkeypatch.setattr(fewshot, "TaskSampler", recording("probe"))
    protocols.evaluate_protocol(ALGORITHMS["maml"], cfg, MAML, model, random_store)
    fewshot.evaluate(cfg, model, random_store, progress=False)
    assert drawn["own"] == drawn["probe"] and len(drawn["own"]) == 4

"""The task set and its augmented supports depend only on the seed, not on batching; results files are complete."""

import json

import numpy as np
import pytest
import torch

from metantk_nas.data.episodes import TaskSampler
from metantk_nas.data.store import open_split
from metantk_nas.evaluate.config import EvalConfig
from metantk_nas.evaluate.features import FeatureExtractor, support_features
from metantk_nas.evaluate.fewshot import evaluate
from metantk_nas.space.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tiny_model):
    """``(model.pt, store)`` of the session's one-epoch model (conftest)."""
    return tiny_model


def test_support_features_do_not_depend_on_batch_size(trained):
    model_path, store = trained
    model, meta = load_model(model_path)
    split = open_split(store, "test")
    sampler = TaskSampler(split.labels, 5, 2, 3, seed=7)
    tasks = sampler.stack(6)
    features = {}
    for batch_size in (7, 1000):
        extractor = FeatureExtractor(model, meta["normalization"]["mean"], meta["normalization"]["std"],
                                     torch.device("cpu"), batch_size)
        features[batch_size] = support_features(extractor, split.images, tasks, 0, 2, 3, seed=7)
        # the same tasks asked for in a different grouping (tasks 3..5 alone) give the same features
        tail = support_features(extractor, split.images, sampler.stack(3, start=3), 3, 2, 3, seed=7)
        np.testing.assert_allclose(tail, features[batch_size][3:], atol=1e-5)
    assert features[7].shape == (6, 5 * 2 * 3, model.num_features)
    np.testing.assert_allclose(features[7], features[1000], atol=1e-5)
    # copies of one support image are augmented independently
    assert not np.allclose(features[7][0, 0], features[7][0, 10])


def test_task_set_is_identical_across_runs_and_batch_sizes(trained, tmp_path):
    model_path, store = trained
    runs = []
    for batch_size, out in ((13, tmp_path / "a"), (512, tmp_path / "b"), (512, tmp_path / "c")):
        cfg = EvalConfig(shots=(1, 5), tasks=12, queries=4, n_aug=2, seed=3, device="cpu", batch_size=batch_size,
                         C_5shot=0.5)
        evaluate(cfg, model_path, store, out, progress=False)
        runs.append({shot: json.loads((out / f"{shot}shot.json").read_text()) for shot in (1, 5)})
    for shot in (1, 5):
        assert runs[1][shot]["accuracies"] == runs[2][shot]["accuracies"]  # rerun: identical
        np.testing.assert_allclose(runs[0][shot]["accuracies"], runs[1][shot]["accuracies"], atol=1 / 20 + 1e-9)
    result = runs[1][5]
    assert result["C"] == 0.5 and runs[1][1]["C"] == 1.0
    assert {"mean", "ci95", "accuracies", "classifier", "seeds", "timing", "provenance", "n_aug", "n_queries"} <= set(result)
    assert len(result["accuracies"]) == 12 and result["n_tasks"] == 12
    assert result["mean"] == pytest.approx(np.mean(result["accuracies"]))


def test_task_indices_depend_only_on_seed_and_index():
    labels = np.repeat(np.arange(10), 20)
    a, b = TaskSampler(labels, 5, 5, 10, seed=1), TaskSampler(labels, 5, 5, 10, seed=1)
    late_first = [b.task(i) for i in reversed(range(20))][::-1]
    for i in range(20):
        assert np.array_equal(a.task(i).support, late_first[i].support)
        assert np.array_equal(a.task(i).query, late_first[i].query)


@pytest.mark.parametrize("values, message", [
    ({"classifier_1shot": "knn"}, "classifier_1shot"),
    ({"shots": [2]}, "shots"),
    ({"shots": [1, 1]}, "shots"),
    ({"tasks": 0}, "tasks"),
    ({"backend": "jax"}, "backend"),
    ({"queries": "many"}, "key 'queries' must be an integer"),
    ({"unknown": 1}, "unknown key"),
])
def test_eval_config_rejects_bad_values_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        EvalConfig.from_dict(values)


def test_model_file_checks(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="corrupted or unreadable model file"):
        load_model(tmp_path / "bad.pt")


def test_model_file_layout_and_version_1_files(trained, tmp_path):
    """Weights under "model" (as in the training checkpoint); files of version 1 ("state_dict") still load."""
    model_path, _ = trained
    state = torch.load(model_path, weights_only=True)
    assert state["format_version"] == 2 and "model" in state and "state_dict" not in state
    model, meta = load_model(model_path)
    assert "model" not in meta and meta["genotype"] == state["genotype"]
    old = {**{k: v for k, v in state.items() if k != "model"}, "format_version": 1, "state_dict": state["model"]}
    torch.save(old, tmp_path / "v1.pt")
    loaded, _ = load_model(tmp_path / "v1.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    torch.save({**state, "format_version": 3}, tmp_path / "v3.pt")
    with pytest.raises(ValueError, match="format_version 3 is not readable"):
        load_model(tmp_path / "v3.pt")

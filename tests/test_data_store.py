"""The store: atomic writes, manifest contents, and refusal of modified files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from metantk_nas.data import store
from metantk_nas.data.store import open_split, read_dataset_info, write_store


def _splits(rng, size=8, per_class=3, classes=(4, 2, 2)):
    out = {}
    for split, n in zip(("train", "val", "test"), classes):
        images = rng.integers(0, 256, size=(n * per_class, size, size, 3), dtype=np.uint8)
        out[split] = (images, np.repeat(np.arange(n, dtype=np.int64), per_class), [f"c{i}" for i in range(n)])
    return out


@pytest.fixture()
def small_store(tmp_path):
    rng = np.random.default_rng(0)
    source = tmp_path / "source.bin"
    source.write_bytes(b"raw input")
    splits = _splits(rng)
    path = write_store(tmp_path / "store", "toy", "test", splits, {"train": [source]}, expected_per_class=3, seed=5)
    return path, splits


def test_layout_manifest_and_statistics(small_store):
    path, splits = small_store
    info = read_dataset_info(path)
    assert info["splits"] == ["train", "val", "test"] and info["image_size"] == 8
    assert info["provenance"]["seed"] == 5
    data = open_split(path, "train")
    images, labels, classes = splits["train"]
    np.testing.assert_array_equal(np.asarray(data.images), images)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.classes == classes and data.num_classes == 4 and len(data) == 12
    pixels = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(0), atol=1e-12)
    np.testing.assert_allclose(data.std, pixels.std(0), atol=1e-9)
    manifest = data.manifest
    assert manifest["sources"][0]["sha256"] == store.sha256_file(path.parent / "source.bin")
    assert manifest["images_per_class"] == {"min": 3, "max": 3, "mean": 3.0, "expected": 3}
    assert manifest["files"]["images.npy"]["sha256"] == store.sha256_file(path / "train" / "images.npy")


def test_channel_stats_in_chunks_match_numpy():
    images = np.random.default_rng(1).integers(0, 256, size=(50, 5, 5, 3), dtype=np.uint8)
    mean, std = store.channel_stats(images, rows=7)
    np.testing.assert_allclose(mean, (images / 255.0).reshape(-1, 3).mean(0), atol=1e-12)
    np.testing.assert_allclose(std, (images / 255.0).reshape(-1, 3).std(0), atol=1e-9)


@pytest.mark.parametrize("victim", ["images.npy", "labels.npy", "classes.json"])
def test_a_modified_file_is_refused(small_store, victim):
    path, _ = small_store
    target = path / "val" / victim
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01  # same size, one bit changed
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{victim}: sha256 differs from the manifest"):
        open_split(path, "val")
    open_split(path, "train")  # other splits are untouched


def test_a_truncated_file_is_refused(small_store):
    path, _ = small_store
    target = path / "test" / "images.npy"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(ValueError, match="images.npy: size .* differs from the manifest"):
        open_split(path, "test")


def test_sampled_mode_misses_a_byte_between_samples_default_and_full_do_not(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "FULL_HASH_LIMIT", 1000)
    monkeypatch.setattr(store, "_SAMPLE_CHUNK", 64)
    monkeypatch.setattr(store, "_SAMPLE_COUNT", 4)
    path = write_store(tmp_path / "store", "toy", "test", _splits(np.random.default_rng(2), size=16), {})
    target = path / "train" / "images.npy"
    record = json.loads((path / "train" / "manifest.json").read_text())["files"]["images.npy"]
    assert "sampled_sha256" in record
    size = target.stat().st_size
    original = target.read_bytes()
    unsampled = size // 6  # between the sampled chunks at 0, ~size/3, ~2size/3 and the end
    changed = bytearray(original)
    changed[unsampled] ^= 0xFF
    target.write_bytes(bytes(changed))
    open_split(path, "train", verify="sampled")  # the sampled check cannot see a change between samples ...
    for verify in (True, "cached", "full"):  # ... the default and the full one do
        with pytest.raises(ValueError, match="images.npy: sha256 differs"):
            open_split(path, "train", verify=verify)
    changed = bytearray(original)
    changed[size - 5] ^= 0xFF  # inside the last sampled chunk
    target.write_bytes(bytes(changed))
    with pytest.raises(ValueError, match="images.npy: sampled sha256 differs"):
        open_split(path, "train", verify="sampled")


def test_invalid_split_leaves_nothing(tmp_path):
    splits = _splits(np.random.default_rng(3))
    images, labels, classes = splits["test"]
    splits["test"] = (images, labels + 5, classes)
    with pytest.raises(ValueError, match=r"store/test: labels must lie in 0..1"):
        write_store(tmp_path / "store", "toy", "test", splits, {})
    assert list(tmp_path.iterdir()) == []


def test_unknown_split_and_version(small_store):
    path, _ = small_store
    with pytest.raises(ValueError, match="no split 'trainval'"):
        open_split(path, "trainval")
    info = json.loads((path / "dataset.json").read_text())
    (path / "dataset.json").write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        open_split(path, "train")

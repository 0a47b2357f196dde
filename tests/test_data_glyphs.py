"""The embedded glyph dataset: counts, homoglyph removal, seeded byte-identity."""

from __future__ import annotations

import numpy as np
import pytest

from metantk_nas.data import glyphs
from metantk_nas.data.store import open_split, read_dataset_info

SIZE, PER_CLASS = 32, 40  # the quick 32×32 variant at the acceptance's minimum of 40 images per class


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("glyphs")
    return {name: glyphs.generate_glyphs(base / name, image_size=SIZE, images_per_class=PER_CLASS, seed=seed)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))}


def test_counts_and_split(stores):
    info = read_dataset_info(stores["a"])
    assert info["image_size"] == SIZE and info["splits"] == ["train", "val", "test"]
    counts = {}
    for split in ("train", "val", "test"):
        data = open_split(stores["a"], split)
        counts[split] = data.num_classes
        assert data.images.shape[1:] == (SIZE, SIZE, 3)
        assert np.bincount(data.labels).tolist() == [PER_CLASS] * data.num_classes
        assert all(name.startswith("U+") for name in data.classes)
    total = sum(counts.values())
    assert total >= 300
    assert counts["train"] == round(0.64 * total) and counts["val"] == round(0.16 * total)
    names = [open_split(stores["a"], s).classes for s in ("train", "val", "test")]
    assert len(set(sum(names, []))) == total  # disjoint splits


def test_homoglyphs_are_dropped():
    chars = set(glyphs.glyph_classes()[0])
    for latin, twin in [("a", "\u0430"), ("A", "\u0391"), ("o", "\u043e"), ("I", "l"), ("p", "\u0440")]:
        assert latin in chars and twin not in chars
    assert {"O", "0", "A", "Z", "\u0436", "\u03bb"} <= chars  # distinct shapes stay


def test_same_seed_is_byte_identical_and_another_seed_differs(stores):
    for split in ("train", "val", "test"):
        manifests = [(stores[name] / split / "manifest.json").read_bytes() for name in "abc"]
        assert manifests[0] == manifests[1]
        assert manifests[0] != manifests[2]
        images = [(stores[name] / split / "images.npy").read_bytes() for name in "ab"]
        assert images[0] == images[1]
    assert open_split(stores["a"], "train").classes != open_split(stores["c"], "train").classes


def test_images_show_the_glyph_on_a_contrasting_background():
    chars, fonts = glyphs.glyph_classes()
    images = glyphs.render_class("A", fonts, 32, 12, seed=3).astype(np.float64)
    luma = images @ np.array([0.299, 0.587, 0.114])
    spread = luma.reshape(12, -1).max(axis=1) - luma.reshape(12, -1).min(axis=1)
    assert (spread > 0.5 * glyphs.MIN_CONTRAST).all()
    again = glyphs.render_class("A", fonts, 32, 12, seed=3)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images[0], images[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        glyphs.generate_glyphs("/nonexistent/never", image_size=4)

"""Every real format converts from fixtures; every listed bad input fails clearly and leaves nothing."""

from __future__ import annotations

import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from metantk_nas.data import fixtures
from metantk_nas.data.readers import RFS_MINI_FILES, convert
from metantk_nas.data.store import open_split

EXPECTED = {
    "rfs-mini": ((64, 16, 20), 84), "ravi-csv": ((64, 16, 20), 84),
    "rfs-tiered": ((351, 97, 160), 84), "ren-tiered": ((351, 97, 160), 84),
    "rfs-cifarfs": ((64, 16, 20), 32), "rfs-fc100": ((60, 20, 20), 32),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """One fixture root per format (written once; tests that corrupt files work on copies)."""
    base = tmp_path_factory.mktemp("sources")
    return {fmt: (writer(base / fmt), base / fmt)[1] for fmt, writer in fixtures.FIXTURE_WRITERS.items()}


def _copy(sources: dict[str, Path], fmt: str, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(sources[fmt], root)
    return root


def _convert_quiet(fmt: str, root: Path, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return convert(fmt, root, out)


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_format_converts_into_a_valid_store(fmt, sources, tmp_path):
    out = tmp_path / "store"
    with pytest.warns(UserWarning, match="standard"):
        convert(fmt, sources[fmt], out)
    counts, size = EXPECTED[fmt]
    for split, n_classes in zip(("train", "val", "test"), counts):
        data = open_split(out, split, verify="full")
        assert data.num_classes == n_classes and data.image_size == size
        assert data.images.dtype == np.uint8 and isinstance(data.images, np.memmap)
        assert sorted(np.unique(data.labels).tolist()) == list(range(n_classes))
        assert data.manifest["sources"] and all(len(s["sha256"]) == 64 for s in data.manifest["sources"])
        assert data.manifest["counts"] == {"images": len(data.labels), "classes": n_classes}


def test_rfs_mini_keeps_images_labels_and_names(sources, tmp_path):
    out = _convert_quiet("rfs-mini", sources["rfs-mini"], tmp_path / "store")
    raw = pickle.loads((sources["rfs-mini"] / "miniImageNet" / RFS_MINI_FILES["val"]).read_bytes())
    data = open_split(out, "val")
    np.testing.assert_array_equal(np.asarray(data.images), raw["data"])
    assert data.classes[0] == "n00000064"  # original label 64 → id 0, name from catname2label
    np.testing.assert_array_equal(data.labels, np.asarray(raw["labels"]) - 64)


@pytest.mark.parametrize("fmt,prefix", [("rfs-cifarfs", "CIFAR_FS"), ("rfs-fc100", "FC100")])
def test_cifar_like_accepts_the_l2l_naming(fmt, prefix, tmp_path):
    root = tmp_path / "flat"
    fixtures.FIXTURE_WRITERS[fmt](root, naming="l2l")
    assert (root / f"{prefix}_train.pickle").is_file()
    out = _convert_quiet(fmt, root, tmp_path / "store")
    assert open_split(out, "train").num_classes == EXPECTED[fmt][0][0]


def _assert_fails_cleanly(fmt, root, tmp_path, error, match):
    out = tmp_path / "out" / "store"
    with pytest.raises(error, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        convert(fmt, root, out)
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temp or scratch folder left behind


def _rewrite_pickle(path: Path, change) -> None:
    payload = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps(change(payload), protocol=2))


MINI_VAL = Path("miniImageNet") / RFS_MINI_FILES["val"]


def test_missing_file(sources, tmp_path):
    root = _copy(sources, "rfs-mini", tmp_path)
    (root / MINI_VAL).unlink()
    _assert_fails_cleanly("rfs-mini", root, tmp_path, FileNotFoundError, "miniImageNet_category_split_val.pickle")


def test_wrong_key(sources, tmp_path):
    root = _copy(sources, "rfs-mini", tmp_path)
    _rewrite_pickle(root / MINI_VAL, lambda p: {"images": p["data"], "labels": p["labels"]})
    _assert_fails_cleanly("rfs-mini", root, tmp_path, ValueError, r"split_val.pickle: missing key 'data'")


def test_wrong_shape(sources, tmp_path):
    root = _copy(sources, "rfs-mini", tmp_path)
    _rewrite_pickle(root / MINI_VAL, lambda p: {**p, "data": p["data"][:, :80]})
    _assert_fails_cleanly("rfs-mini", root, tmp_path, ValueError, r"split_val.pickle: images must be uint8 N×84×84×3")


def test_wrong_dtype(sources, tmp_path):
    root = _copy(sources, "rfs-cifarfs", tmp_path)
    _rewrite_pickle(root / "CIFAR-FS" / "test.pickle", lambda p: {**p, "data": p["data"].astype(np.float32)})
    _assert_fails_cleanly("rfs-cifarfs", root, tmp_path, ValueError, r"test.pickle: images must be uint8.*float32")


def test_wrong_class_count(sources, tmp_path):
    root = _copy(sources, "rfs-fc100", tmp_path)
    keep = lambda p: {"data": p["data"][2:], "labels": p["labels"][2:]}  # noqa: E731 - drops one class
    _rewrite_pickle(root / "FC100" / "val.pickle", keep)
    _assert_fails_cleanly("rfs-fc100", root, tmp_path, ValueError, r"val.pickle: 19 classes, but the FC100 val split has 20")


def test_label_out_of_range(sources, tmp_path):
    root = _copy(sources, "rfs-mini", tmp_path)
    _rewrite_pickle(root / MINI_VAL, lambda p: {**p, "labels": [500] + p["labels"][1:]})
    _assert_fails_cleanly("rfs-mini", root, tmp_path, ValueError, r"labels must lie in 0..99")


def test_ren_label_out_of_range(sources, tmp_path):
    root = _copy(sources, "ren-tiered", tmp_path)
    path = root / "tieredImageNet" / "test_labels.pkl"
    _rewrite_pickle(path, lambda p: {**p, "label_specific": np.where(np.arange(160) == 0, 160, p["label_specific"])})
    _assert_fails_cleanly("ren-tiered", root, tmp_path, ValueError, r"test_labels.pkl: labels must lie in 0..159")


def test_truncated_npz(sources, tmp_path):
    root = _copy(sources, "rfs-tiered", tmp_path)
    path = root / "tieredImageNet" / "val_images.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_fails_cleanly("rfs-tiered", root, tmp_path, ValueError, r"val_images.npz: truncated or corrupt npz")


def test_npz_without_images_key(sources, tmp_path):
    root = _copy(sources, "rfs-tiered", tmp_path)
    np.savez(root / "tieredImageNet" / "test_images.npz", data=np.zeros((160, 84, 84, 3), np.uint8))
    _assert_fails_cleanly("rfs-tiered", root, tmp_path, ValueError, r"test_images.npz: missing key 'images'")


def test_corrupt_jpeg(sources, tmp_path):
    root = _copy(sources, "ravi-csv", tmp_path)
    victim = sorted((root / "miniImageNet" / "images").glob("*.jpg"))[5]
    victim.write_bytes(b"not a jpeg at all")
    _assert_fails_cleanly("ravi-csv", root, tmp_path, ValueError, rf"{victim.name}: not a readable image")


def test_csv_with_wrong_header(sources, tmp_path):
    root = _copy(sources, "ravi-csv", tmp_path)
    path = root / "miniImageNet" / "test.csv"
    path.write_text(path.read_text().replace("filename,label", "file,class"))
    _assert_fails_cleanly("ravi-csv", root, tmp_path, ValueError, r"test.csv: expected the header 'filename,label'")


def test_corrupt_png(sources, tmp_path):
    root = _copy(sources, "ren-tiered", tmp_path)
    path = root / "tieredImageNet" / "val_images_png.pkl"
    pngs = pickle.loads(path.read_bytes())
    pngs[3] = np.frombuffer(b"\x89PNG garbage", dtype=np.uint8)
    path.write_bytes(pickle.dumps(pngs, protocol=2))
    _assert_fails_cleanly("ren-tiered", root, tmp_path, ValueError, r"val_images_png.pkl\[3\]: not a readable image")


def test_failed_conversion_keeps_an_existing_store(sources, tmp_path):
    out = _convert_quiet("rfs-cifarfs", sources["rfs-cifarfs"], tmp_path / "store")
    before = (out / "train" / "manifest.json").read_bytes()
    root = _copy(sources, "rfs-cifarfs", tmp_path)
    (root / "CIFAR-FS" / "val.pickle").unlink()
    with pytest.raises(FileNotFoundError), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        convert("rfs-cifarfs", root, out, overwrite=True)
    assert (out / "train" / "manifest.json").read_bytes() == before

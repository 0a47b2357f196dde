"""Writers of tiny files in every supported real format, with the standard class counts.

Why: the readers must be tested end to end (file names, keys, encodings, class checks)
without the real datasets. Each writer produces the same layout the real download has,
only with ``images_per_class`` images per class; images are a per-class colour plus noise.
"""

from __future__ import annotations

import csv
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metantk_nas.data.readers import CIFAR_FS, FC100, MINI_IMAGENET, RFS_MINI_FILES, SPLITS, TIERED_IMAGENET, Benchmark


def _images(n_classes: int, per_class: int, size: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(0, 256, size=(n_classes, 1, 1, 1, 3))
    noise = rng.integers(-20, 21, size=(n_classes, per_class, size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8).reshape(-1, size, size, 3)


def _global_ids(bench: Benchmark) -> dict[str, np.ndarray]:
    """Class ids as the files hold them: one global numbering, train first, then val, test."""
    ids, start = {}, 0
    for split in SPLITS:
        ids[split] = np.arange(start, start + bench.classes[split])
        start += bench.classes[split]
    return ids


def _dump(path: Path, payload: object, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(payload, protocol=protocol))


def write_rfs_mini_fixture(root: str | os.PathLike, images_per_class: int = 2, seed: int = 0) -> Path:
    """``root/miniImageNet/miniImageNet_category_split_*.pickle`` (protocol 2, as the py2-era files)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / MINI_IMAGENET.folder
    for split, ids in _global_ids(MINI_IMAGENET).items():
        _dump(folder / RFS_MINI_FILES[split], {
            "data": _images(ids.size, images_per_class, 84, rng),
            "labels": np.repeat(ids, images_per_class).tolist(),
            "catname2label": {f"n{label:08d}": int(label) for label in ids},
        })
    return folder


def write_rfs_tiered_fixture(root: str | os.PathLike, images_per_class: int = 1, seed: int = 0) -> Path:
    """``root/tieredImageNet/{split}_images.npz`` (key ``images``) + ``{split}_labels.pkl`` (key ``labels``)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / TIERED_IMAGENET.folder
    folder.mkdir(parents=True, exist_ok=True)
    for split, ids in _global_ids(TIERED_IMAGENET).items():
        np.savez(folder / f"{split}_images.npz", images=_images(ids.size, images_per_class, 84, rng))
        _dump(folder / f"{split}_labels.pkl", {"labels": np.repeat(ids, images_per_class).tolist()})
    return folder


def write_ravi_csv_fixture(root: str | os.PathLike, images_per_class: int = 2, seed: int = 0) -> Path:
    """``root/miniImageNet/{split}.csv`` + ``images/*.jpg`` (non-square JPEGs, so the resize is exercised)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / MINI_IMAGENET.folder
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split, ids in _global_ids(MINI_IMAGENET).items():
        images = _images(ids.size, images_per_class, 96, rng)[:, :, :90]
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            for index, image in enumerate(images):
                wnid = f"n{ids[index // images_per_class]:08d}"
                filename = f"{wnid}{index % images_per_class + 1:08d}.jpg"
                Image.fromarray(image).save(folder / "images" / filename, quality=90)
                writer.writerow([filename, wnid])
    return folder


def write_ren_tiered_fixture(root: str | os.PathLike, images_per_class: int = 1, seed: int = 0) -> Path:
    """``root/tieredImageNet/{split}_images_png.pkl`` (uint8 arrays of PNG bytes, as cv2.imencode gives)
    + ``{split}_labels.pkl`` (``label_specific`` per split from 0, ``label_specific_str``, general labels)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / TIERED_IMAGENET.folder
    for split, ids in _global_ids(TIERED_IMAGENET).items():
        pngs = []
        for image in _images(ids.size, images_per_class, 84, rng):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
            pngs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8).reshape(-1, 1))
        _dump(folder / f"{split}_images_png.pkl", pngs)
        specific = np.repeat(np.arange(ids.size), images_per_class)
        _dump(folder / f"{split}_labels.pkl", {
            "label_specific": specific,
            "label_general": specific // 20,
            "label_specific_str": [f"n{label:08d}" for label in ids],
            "label_general_str": [f"n9{group:07d}" for group in range((ids.size + 19) // 20)],
        })
    return folder


def _write_cifar_like(bench: Benchmark, prefix: str, root: str | os.PathLike, images_per_class: int,
                      seed: int, naming: str) -> Path:
    if naming not in ("rfs", "l2l"):
        raise ValueError(f"naming must be 'rfs' or 'l2l', got {naming!r}")
    rng = np.random.default_rng(seed)
    folder = Path(root) / bench.folder if naming == "rfs" else Path(root)
    cifar_ids = rng.permutation(100)  # sparse CIFAR-100 ids, as in the real files
    for split, ids in _global_ids(bench).items():
        name = f"{split}.pickle" if naming == "rfs" else f"{prefix}_{split}.pickle"
        _dump(folder / name, {
            "data": _images(ids.size, images_per_class, 32, rng),
            "labels": np.repeat(cifar_ids[ids], images_per_class).tolist(),
        })
    return folder


def write_rfs_cifarfs_fixture(root: str | os.PathLike, images_per_class: int = 2, seed: int = 0,
                              naming: str = "rfs") -> Path:
    """CIFAR-FS: ``root/CIFAR-FS/{split}.pickle`` (``naming="rfs"``) or ``root/CIFAR_FS_{split}.pickle`` (``"l2l"``)."""
    return _write_cifar_like(CIFAR_FS, "CIFAR_FS", root, images_per_class, seed, naming)


def write_rfs_fc100_fixture(root: str | os.PathLike, images_per_class: int = 2, seed: int = 0,
                            naming: str = "rfs") -> Path:
    """FC100: ``root/FC100/{split}.pickle`` (``naming="rfs"``) or ``root/FC100_{split}.pickle`` (``"l2l"``)."""
    return _write_cifar_like(FC100, "FC100", root, images_per_class, seed, naming)


FIXTURE_WRITERS: dict[str, Callable[..., Path]] = {
    "rfs-mini": write_rfs_mini_fixture,
    "rfs-tiered": write_rfs_tiered_fixture,
    "ravi-csv": write_ravi_csv_fixture,
    "ren-tiered": write_ren_tiered_fixture,
    "rfs-cifarfs": write_rfs_cifarfs_fixture,
    "rfs-fc100": write_rfs_fc100_fixture,
}

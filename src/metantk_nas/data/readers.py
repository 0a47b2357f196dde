"""Readers for the real few-shot formats, each validated and converted into the store.

Every reader returns ``{split: (images uint8 N×H×W×3, labels int64 0..C-1, class names)}``
for the standard class splits (train / val / test) plus the files it read. Checks that a
wrong file fails early and by name: missing file, missing key, shape/dtype, label range,
class count per split (an error), images per class (a warning, so tiny fixtures convert),
truncated archives and corrupt images.

Large inputs (npz archives, JPEG folders, PNG lists) are decoded into memory-mapped scratch
files, so converting tieredImageNet needs disk, not RAM, for the images.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metantk_nas.data import safe_pickle
from metantk_nas.data.store import SplitArrays, check_out_vs_root, check_store_target, write_store
from metantk_nas.io import remove_leftovers, temporary_directory

SPLITS = ("train", "val", "test")
Progress = Callable[[int], None] | None


@dataclass(frozen=True)
class Benchmark:
    """The standard shape of a benchmark: what a reader checks its input against."""

    name: str
    folder: str
    classes: Mapping[str, int]
    images: Mapping[str, int]
    per_class: int | None
    image_size: int
    label_limit: int


MINI_IMAGENET = Benchmark("miniImageNet", "miniImageNet", {"train": 64, "val": 16, "test": 20},
                          {"train": 38400, "val": 9600, "test": 12000}, 600, 84, 100)
TIERED_IMAGENET = Benchmark("tieredImageNet", "tieredImageNet", {"train": 351, "val": 97, "test": 160},
                            {"train": 448695, "val": 124261, "test": 206209}, None, 84, 608)
CIFAR_FS = Benchmark("CIFAR-FS", "CIFAR-FS", {"train": 64, "val": 16, "test": 20},
                     {"train": 38400, "val": 9600, "test": 12000}, 600, 32, 100)
FC100 = Benchmark("FC100", "FC100", {"train": 60, "val": 20, "test": 20},
                  {"train": 36000, "val": 12000, "test": 12000}, 600, 32, 100)

#: RFS miniImageNet files of the standard class splits (the ``train_phase_{val,test}`` files
#: hold extra images of the 64 training classes and are not needed for few-shot splits).
RFS_MINI_FILES = {
    "train": "miniImageNet_category_split_train_phase_train.pickle",
    "val": "miniImageNet_category_split_val.pickle",
    "test": "miniImageNet_category_split_test.pickle",
}


@dataclass
class ReadResult:
    """What a reader hands to ``write_store``."""

    benchmark: Benchmark
    splits: dict[str, SplitArrays]
    sources: dict[str, list[Path]]


def find_file(root: Path, folder: str, names: Sequence[str]) -> Path:
    """The first of ``names`` found in ``root`` or ``root/folder``; a clear error otherwise."""
    for directory in (root, root / folder):
        for name in names:
            if (directory / name).is_file():
                return directory / name
    raise FileNotFoundError(f"{root}: none of {list(names)} found (looked in {root} and {root / folder})")


def _key(mapping: Any, key: str, path: Path, expected: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{path}: expected {expected}, got {type(mapping).__name__}")
    for candidate in (key, key.encode()):
        if candidate in mapping:
            return mapping[candidate]
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in mapping)
    raise ValueError(f"{path}: missing key {key!r} (expected {expected}; found keys {keys})")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def check_images(images: Any, path: Path, size: int) -> np.ndarray:
    """uint8 N×size×size×3 or a ValueError naming ``path`` and the expectation."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{path}: images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"{path}: images must be uint8 N×{size}×{size}×3, got {images.dtype} {images.shape}")
    return images


def finish_split(
    bench: Benchmark, split: str, images: np.ndarray, raw_labels: Any, path: Path,
    names: Mapping[Any, str] | None = None, label_limit: int | None = None,
) -> SplitArrays:
    """Check labels and class counts, remap labels to 0..C-1 (sorted original order), warn on odd counts."""
    labels = np.asarray(raw_labels)
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{path}: expected {images.shape[0]} labels (one per image), got shape {labels.shape}")
    if labels.dtype.kind in "iu":
        limit = bench.label_limit if label_limit is None else label_limit
        if labels.size and (labels.min() < 0 or labels.max() >= limit):
            raise ValueError(f"{path}: labels must lie in 0..{limit - 1} for {bench.name}, "
                             f"got {labels.min()}..{labels.max()}")
    elif labels.dtype.kind not in "US":
        raise ValueError(f"{path}: labels must be integers or class names, got dtype {labels.dtype}")
    originals, remapped, per_class = np.unique(labels, return_inverse=True, return_counts=True)
    expected = bench.classes[split]
    if originals.size != expected:
        raise ValueError(f"{path}: {originals.size} classes, but the {bench.name} {split} split has {expected}")
    standard = bench.images[split]
    if labels.size != standard or (bench.per_class and (per_class != bench.per_class).any()):
        warnings.warn(
            f"{path}: {labels.size} images, {per_class.min()}..{per_class.max()} per class; the standard "
            f"{bench.name} {split} split has {standard}"
            + (f" ({bench.per_class} per class)" if bench.per_class else ""),
            stacklevel=3,
        )
    names = names or {}
    classes = [names.get(value.item(), _text(value.item())) for value in originals]
    return images, remapped.astype(np.int64), classes


# --- RFS pickles: miniImageNet, CIFAR-FS, FC100 -------------------------------------------------


def _read_rfs_pickle(bench: Benchmark, split: str, path: Path) -> SplitArrays:
    payload = safe_pickle.load(path, encoding="latin1")
    expected = "a dict with keys 'data' and 'labels'"
    images = check_images(_key(payload, "data", path, expected), path, bench.image_size)
    labels = _key(payload, "labels", path, expected)
    names = None
    if isinstance(payload, Mapping) and "catname2label" in payload:
        names = {int(label): _text(name) for name, label in payload["catname2label"].items()}
    return finish_split(bench, split, images, labels, path, names)


def read_rfs_mini(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """RFS/MetaOptNet miniImageNet pickles (``data`` uint8 N×84×84×3, ``labels``)."""
    splits, sources = {}, {}
    for split, name in RFS_MINI_FILES.items():
        path = find_file(root, MINI_IMAGENET.folder, [name])
        splits[split], sources[split] = _read_rfs_pickle(MINI_IMAGENET, split, path), [path]
        if progress:
            progress(len(splits[split][1]))
    return ReadResult(MINI_IMAGENET, splits, sources)


def _read_cifar_like(bench: Benchmark, prefix: str, root: Path, progress: Progress) -> ReadResult:
    splits, sources = {}, {}
    for split in SPLITS:
        path = find_file(root, bench.folder, [f"{split}.pickle", f"{prefix}_{split}.pickle"])
        splits[split], sources[split] = _read_rfs_pickle(bench, split, path), [path]
        if progress:
            progress(len(splits[split][1]))
    return ReadResult(bench, splits, sources)


def read_rfs_cifarfs(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """CIFAR-FS in the RFS layout (``CIFAR-FS/{split}.pickle``) or ``CIFAR_FS_{split}.pickle``."""
    return _read_cifar_like(CIFAR_FS, "CIFAR_FS", root, progress)


def read_rfs_fc100(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """FC100 in the RFS layout (``FC100/{split}.pickle``) or ``FC100_{split}.pickle``."""
    return _read_cifar_like(FC100, "FC100", root, progress)


# --- RFS tieredImageNet: npz + labels pickle -------------------------------------------------------


def read_npz_images(path: Path, key: str, out: Path, size: int, rows: int = 1024) -> np.ndarray:
    """Stream array ``key`` of an npz archive into a memory-mapped ``out`` file (bounded RAM)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            member = f"{key}.npy"
            if member not in archive.namelist():
                found = [name.removesuffix(".npy") for name in archive.namelist()]
                raise ValueError(f"{path}: missing key {key!r} (expected an npz with {key!r}; found {found})")
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                          else np.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = header(handle)
                if dtype != np.uint8 or len(shape) != 4 or shape[1:] != (size, size, 3) or fortran_order:
                    raise ValueError(f"{path}: {key!r} must be uint8 N×{size}×{size}×3 (C order), got {dtype} {shape}")
                images = np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=shape)
                row_bytes = size * size * 3
                for start in range(0, shape[0], rows):
                    count = min(rows, shape[0] - start)
                    block = handle.read(count * row_bytes)
                    if len(block) != count * row_bytes:
                        raise ValueError(f"{path}: truncated npz ({key!r} ends after {start} rows of {shape[0]})")
                    images[start:start + count] = np.frombuffer(block, np.uint8).reshape(count, size, size, 3)
                images.flush()
                return images
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise ValueError(f"{path}: truncated or corrupt npz archive ({error})") from error


def read_rfs_tiered(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """RFS tieredImageNet: ``{split}_images.npz`` (``images``) + ``{split}_labels.pkl`` (``labels``)."""
    bench = TIERED_IMAGENET
    splits, sources = {}, {}
    for split in SPLITS:
        image_path = find_file(root, bench.folder, [f"{split}_images.npz"])
        label_path = find_file(root, bench.folder, [f"{split}_labels.pkl"])
        payload = safe_pickle.load(label_path, encoding="latin1")
        labels = _key(payload, "labels", label_path, "a dict with key 'labels'")
        images = read_npz_images(image_path, "images", scratch / f"{split}.npy", bench.image_size)
        splits[split] = finish_split(bench, split, images, labels, label_path)
        sources[split] = [image_path, label_path]
        if progress:
            progress(len(labels))
    return ReadResult(bench, splits, sources)


# --- Ravi & Larochelle CSV + JPEG, Ren tieredImageNet png-pkl -----------------------------------


def decode_image(data: bytes | Path, where: str, size: int, resize: bool) -> np.ndarray:
    """Decode a JPEG/PNG into uint8 size×size×3 (bilinear resize if ``resize``), naming ``where`` on failure."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            rgb = image.convert("RGB")
            if rgb.size != (size, size):
                if not resize:
                    raise ValueError(f"{where}: image is {rgb.size[0]}×{rgb.size[1]}, expected {size}×{size}")
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{where}: not a readable image ({error})") from error


def read_ravi_csv(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """Ravi & Larochelle split: ``{split}.csv`` (``filename,label``) + ``images/``, resized to 84×84 (PIL bilinear)."""
    bench = MINI_IMAGENET
    splits, sources = {}, {}
    for split in SPLITS:
        csv_path = find_file(root, bench.folder, [f"{split}.csv"])
        image_dir = csv_path.parent / "images"
        with open(csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows or [cell.strip() for cell in rows[0]] != ["filename", "label"]:
            raise ValueError(f"{csv_path}: expected the header 'filename,label', got {rows[0] if rows else 'nothing'}")
        rows = [row for row in rows[1:] if row]
        for number, row in enumerate(rows, start=2):
            if len(row) != 2:
                raise ValueError(f"{csv_path}: line {number}: expected 2 fields 'filename,label', got {row}")
        images = np.lib.format.open_memmap(scratch / f"{split}.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(rows), bench.image_size, bench.image_size, 3))
        for index, (filename, _) in enumerate(rows):
            path = image_dir / filename
            if not path.is_file():
                raise FileNotFoundError(f"{csv_path}: line {index + 2}: image {path} not found")
            images[index] = decode_image(path, str(path), bench.image_size, resize=True)
            if progress:
                progress(1)
        labels = np.array([label for _, label in rows], dtype=str)
        splits[split] = finish_split(bench, split, images, labels, csv_path)
        sources[split] = [csv_path]
    return ReadResult(bench, splits, sources)


def read_ren_tiered(root: Path, scratch: Path, progress: Progress = None) -> ReadResult:
    """Ren et al. tieredImageNet: ``{split}_images_png.pkl`` (list of PNG bytes) + ``{split}_labels.pkl``."""
    bench = TIERED_IMAGENET
    splits, sources = {}, {}
    for split in SPLITS:
        image_path = find_file(root, bench.folder, [f"{split}_images_png.pkl"])
        label_path = find_file(root, bench.folder, [f"{split}_labels.pkl"])
        payload = safe_pickle.load(label_path, encoding="latin1")
        labels = np.asarray(_key(payload, "label_specific", label_path, "a dict with key 'label_specific'"))
        names_list = payload.get("label_specific_str") if isinstance(payload, Mapping) else None
        names = {i: _text(name) for i, name in enumerate(names_list)} if names_list is not None else None
        pngs = safe_pickle.load(image_path, encoding="bytes")
        if not isinstance(pngs, (list, tuple, np.ndarray)):
            raise ValueError(f"{image_path}: expected a list of PNG-encoded images, got {type(pngs).__name__}")
        if len(pngs) != labels.shape[0]:
            raise ValueError(f"{image_path}: {len(pngs)} images but {label_path} has {labels.shape[0]} labels")
        images = np.lib.format.open_memmap(scratch / f"{split}.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(pngs), bench.image_size, bench.image_size, 3))
        for index, png in enumerate(pngs):
            data = png if isinstance(png, bytes) else np.asarray(png, dtype=np.uint8).tobytes()
            images[index] = decode_image(data, f"{image_path}[{index}]", bench.image_size, resize=False)
            if progress:
                progress(1)
        limit = len(names) if names is not None else None
        splits[split] = finish_split(bench, split, images, labels, label_path, names, label_limit=limit)
        sources[split] = [image_path, label_path]
    return ReadResult(bench, splits, sources)


READERS: dict[str, Callable[[Path, Path, Progress], ReadResult]] = {
    "rfs-mini": read_rfs_mini,
    "rfs-tiered": read_rfs_tiered,
    "ravi-csv": read_ravi_csv,
    "ren-tiered": read_ren_tiered,
    "rfs-cifarfs": read_rfs_cifarfs,
    "rfs-fc100": read_rfs_fc100,
}


def convert(fmt: str, root: str | os.PathLike, out_dir: str | os.PathLike, progress: Progress = None,
            overwrite: bool = False) -> Path:
    """Read the dataset of format ``fmt`` under ``root`` and write a store at ``out_dir``.

    Decoding happens in a marked scratch folder beside ``out_dir`` that is always removed (and, if
    this process is killed, by the next writer of ``out_dir``); the store appears at ``out_dir``
    only when every split was read, checked and written. ``out_dir`` must not be, be inside or
    hold ``root``; it may be absent, empty, or (with ``overwrite``) a store written before.
    """
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(READERS)}")
    root, out = Path(root), Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    check_out_vs_root(out, root)
    check_store_target(out, overwrite)  # before hours of decoding, not after
    remove_leftovers(out)  # scratch and temp folders of a killed conversion (GBs on real data)
    with temporary_directory(out, tag="scratch-") as scratch:
        result = READERS[fmt](root, scratch, progress)
        config = {"format": fmt, "root": str(root)}
        return write_store(out, result.benchmark.name, fmt, result.splits, result.sources,
                           expected_per_class=result.benchmark.per_class, config=config, overwrite=overwrite)

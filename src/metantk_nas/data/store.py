"""The prepared dataset store: one folder per dataset, one sub-folder per split.

Every format (the real benchmarks and the embedded glyphs) ends up in this layout, so
nothing downstream knows where a dataset came from::

    STORE/dataset.json                 name, format, format_version, image_size, splits, provenance
    STORE/{split}/images.npy           uint8 N×H×W×3, opened memory-mapped
    STORE/{split}/labels.npy           int64 N, contiguous class ids 0..C-1
    STORE/{split}/classes.json         class names (index = id)
    STORE/{split}/manifest.json        sources, counts, shape, images per class, mean/std, file hashes

``manifest.json`` holds no time stamp, so the same input gives a byte-identical manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from metantk_nas.io import atomic_directory, read_json, write_json

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")

#: Files larger than this are verified on open by size + header + sampled chunks (see ``_sampled_sha256``).
FULL_HASH_LIMIT = 64 * 2**20
_SAMPLE_CHUNK = 2**20
_SAMPLE_COUNT = 32
_HASH_BLOCK = 8 * 2**20
_STATS_BYTES = 32 * 2**20  # float64 working set of one statistics chunk

SplitArrays = tuple[np.ndarray, np.ndarray, list[str]]
Verify = bool | Literal["sampled", "full"]


@dataclass(frozen=True)
class Split:
    """One split of a store: images stay memory-mapped, everything else is small."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    mean: np.ndarray
    std: np.ndarray
    manifest: dict[str, Any] = field(repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def sha256_file(path: str | os.PathLike) -> str:
    """Full sha256 of a file, read in blocks so memory stays bounded."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _sampled_sha256(path: Path, size: int) -> str:
    """sha256 over the first MiB (the .npy header), the last MiB and evenly spaced 1 MiB chunks.

    Why sampled: a full sha256 of tieredImageNet's ~16 GB train images costs minutes on
    every open, while 32 MiB at fixed offsets costs a fraction of a second and still
    catches what goes wrong in practice (a truncated or re-written file, another
    dataset's file, a changed header). A single flipped byte between samples is only
    caught by ``verify="full"``, which compares against the full sha256 stored at write time.
    """
    digest = hashlib.sha256()
    offsets = np.linspace(0, max(size - _SAMPLE_CHUNK, 0), _SAMPLE_COUNT).astype(np.int64)
    with open(path, "rb") as handle:
        for offset in sorted(set(offsets.tolist())):
            handle.seek(offset)
            digest.update(handle.read(_SAMPLE_CHUNK))
    return digest.hexdigest()


def _file_record(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    record: dict[str, Any] = {"size": size, "sha256": sha256_file(path)}
    if size > FULL_HASH_LIMIT:
        record["sampled_sha256"] = _sampled_sha256(path, size)
    return record


def channel_stats(images: np.ndarray, rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] units, accumulated in float64 over row chunks (bounded memory)."""
    if rows is None:
        rows = max(1, _STATS_BYTES // (8 * int(np.prod(images.shape[1:]))))
    total = np.zeros(3, dtype=np.float64)
    total_sq = np.zeros(3, dtype=np.float64)
    count = 0
    for start in range(0, images.shape[0], rows):
        chunk = np.asarray(images[start:start + rows], dtype=np.float64) / 255.0
        flat = chunk.reshape(-1, chunk.shape[-1])
        total += flat.sum(axis=0)
        total_sq += np.square(flat).sum(axis=0)
        count += flat.shape[0]
    if count == 0:
        raise ValueError("cannot compute channel statistics of an empty split")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean, std


def validate_split_arrays(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], where: str) -> None:
    """Check the store invariants; ``where`` names the split or file in the error."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{where}: images must be uint8 N×H×W×3, got {images.dtype} {tuple(images.shape)}")
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"{where}: images must be square, got {tuple(images.shape)}")
    if labels.dtype != np.int64 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: labels must be int64 of length {images.shape[0]}, got {labels.dtype} {tuple(labels.shape)}"
        )
    n_classes = len(classes)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{where}: labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    present = np.unique(labels)
    if present.size != n_classes:
        raise ValueError(f"{where}: {n_classes} classes named but {present.size} present in the labels")


def write_store(
    out_dir: str | os.PathLike,
    name: str,
    fmt: str,
    splits: Mapping[str, SplitArrays],
    sources: Mapping[str, Iterable[str | os.PathLike]],
    *,
    expected_per_class: int | None = None,
    config: Any = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a complete store at ``out_dir`` atomically and return its path.

    ``splits`` maps a split name to ``(images uint8 N×H×W×3, labels int64, class names)``.
    ``sources`` maps a split name to the input files it was read from (hashed into the manifest).
    Nothing appears at ``out_dir`` unless every split was written.
    """
    from metantk_nas.provenance import collect

    if not splits:
        raise ValueError(f"{out_dir}: no splits to write")
    sizes = {int(images.shape[1]) for images, _, _ in splits.values()}
    if len(sizes) != 1:
        raise ValueError(f"{out_dir}: all splits must share one image size, got {sorted(sizes)}")
    target = Path(out_dir)
    with atomic_directory(target) as tmp:
        for split, (images, labels, classes) in splits.items():
            if progress:
                progress(f"writing {split}")
            validate_split_arrays(images, labels, classes, f"{target}/{split}")
            _write_split(tmp / split, name, fmt, split, images, labels, list(classes),
                         [Path(p) for p in sources.get(split, ())], expected_per_class)
        write_json(tmp / "dataset.json", {
            "name": name,
            "format": fmt,
            "format_version": FORMAT_VERSION,
            "image_size": sizes.pop(),
            "splits": list(splits),
            "provenance": collect(config, seed),
        })
    return target


def _write_split(
    folder: Path, name: str, fmt: str, split: str, images: np.ndarray, labels: np.ndarray,
    classes: list[str], sources: list[Path], expected_per_class: int | None,
) -> None:
    folder.mkdir(parents=True)
    np.save(folder / "images.npy", np.ascontiguousarray(images), allow_pickle=False)
    np.save(folder / "labels.npy", labels, allow_pickle=False)
    (folder / "classes.json").write_text(json.dumps(classes, ensure_ascii=False) + "\n", encoding="utf-8")
    mean, std = channel_stats(images)
    per_class = np.bincount(labels, minlength=len(classes))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "format": fmt,
        "split": split,
        "sources": [{"path": str(path), "sha256": sha256_file(path)} for path in sources],
        "counts": {"images": int(labels.shape[0]), "classes": len(classes)},
        "shape": list(images.shape),
        "images_per_class": {
            "min": int(per_class.min()), "max": int(per_class.max()),
            "mean": float(per_class.mean()), "expected": expected_per_class,
        },
        "mean": mean.tolist(),
        "std": std.tolist(),
        "files": {fname: _file_record(folder / fname) for fname in ("images.npy", "labels.npy", "classes.json")},
    }
    write_json(folder / "manifest.json", manifest)


def read_dataset_info(store_dir: str | os.PathLike) -> dict[str, Any]:
    """``dataset.json`` of a store, checked for the format version."""
    info = read_json(Path(store_dir) / "dataset.json")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{Path(store_dir) / 'dataset.json'}: format_version {info.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return info


def verify_split_files(folder: Path, manifest: Mapping[str, Any], mode: Literal["sampled", "full"]) -> None:
    """Refuse a split whose files differ from what the manifest recorded at write time."""
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        raise ValueError(f"{folder / 'manifest.json'}: missing key 'files'")
    for fname in ("images.npy", "labels.npy", "classes.json"):
        path = folder / fname
        record = files.get(fname)
        if record is None:
            raise ValueError(f"{folder / 'manifest.json'}: no entry for {fname} under 'files'")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (listed in the manifest)")
        size = path.stat().st_size
        if size != record["size"]:
            raise ValueError(f"{path}: size {size} differs from the manifest ({record['size']}); the store was modified")
        if mode == "sampled" and "sampled_sha256" in record:
            actual, expected, what = _sampled_sha256(path, size), record["sampled_sha256"], "sampled sha256"
        else:
            actual, expected, what = sha256_file(path), record["sha256"], "sha256"
        if actual != expected:
            raise ValueError(f"{path}: {what} differs from the manifest; the store was modified")


def open_split(store_dir: str | os.PathLike, split: str, verify: Verify = True) -> Split:
    """Open one split of a store, images memory-mapped.

    ``verify``: ``True``/``"sampled"`` checks sizes, the full sha256 of the small files and of
    images up to ``FULL_HASH_LIMIT``, and a sampled sha256 of larger images; ``"full"`` hashes
    everything; ``False`` skips the check (e.g. in worker processes after the parent verified).
    """
    store = Path(store_dir)
    info = read_dataset_info(store)
    if split not in info.get("splits", []):
        raise ValueError(f"{store / 'dataset.json'}: no split {split!r}; the store has {info.get('splits')}")
    folder = store / split
    manifest = read_json(folder / "manifest.json")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder / 'manifest.json'}: format_version {manifest.get('format_version')!r}, "
                         f"expected {FORMAT_VERSION}")
    if verify:
        verify_split_files(folder, manifest, "full" if verify == "full" else "sampled")
    images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    classes = read_json(folder / "classes.json")
    if list(images.shape) != manifest["shape"]:
        raise ValueError(f"{folder / 'images.npy'}: shape {list(images.shape)} differs from the manifest {manifest['shape']}")
    validate_split_arrays(images, labels, classes, str(folder))
    return Split(
        images=images, labels=labels, classes=list(classes),
        mean=np.asarray(manifest["mean"], dtype=np.float64),
        std=np.asarray(manifest["std"], dtype=np.float64),
        manifest=manifest,
    )

"""The prepared dataset store: one folder per dataset, one sub-folder per split.

Every format (the real benchmarks and the embedded glyphs) ends up in this layout, so
nothing downstream knows where a dataset came from::

    STORE/dataset.json                 name, format, format_version, image_size, splits, provenance
    STORE/{split}/images.npy           uint8 N×H×W×3, opened memory-mapped
    STORE/{split}/labels.npy           int64 N, contiguous class ids 0..C-1
    STORE/{split}/classes.json         class names (index = id)
    STORE/{split}/manifest.json        sources, counts, shape, images per class, mean/std, file hashes
    STORE/{split}/.verified.json       cache: full sha256 already checked, per file (size, mtime, ctime, inode)

``manifest.json`` holds no time stamp, so the same input gives a byte-identical manifest.

A store is identified as ours by its own metadata (``is_store_folder`` / ``check_store_target``):
only such a folder (or an empty one) is ever replaced, and only when asked (``overwrite``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from metantk_nas.io import OutputExists, atomic_directory, is_temp_name, read_json, write_json

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")

#: Files larger than this also get a sampled sha256 in the manifest (``verify="sampled"``, see ``_sampled_sha256``).
FULL_HASH_LIMIT = 64 * 2**20
#: The files of one split, and the verification cache beside them.
SPLIT_FILES = ("images.npy", "labels.npy", "classes.json")
VERIFY_CACHE = ".verified.json"
#: A file changed less than this long ago is hashed but not cached: a later change within the same
#: coarse file-system clock tick could leave (size, mtime, ctime) unchanged ("racy" entries, as in git).
RACY_SECONDS = 2.0
_SAMPLE_CHUNK = 2**20
_SAMPLE_COUNT = 32
_HASH_BLOCK = 8 * 2**20
_STATS_BYTES = 32 * 2**20  # float64 working set of one statistics chunk

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")

SplitArrays = tuple[np.ndarray, np.ndarray, list[str]]
Verify = bool | Literal["cached", "sampled", "full"]


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

    Only for ``verify="sampled"`` (an explicit opt-out of the full check): it catches a truncated or
    re-written file, another dataset's file or a changed header, but not a byte changed between
    samples. The default verification is the full sha256, remembered in ``VERIFY_CACHE``.
    """
    digest = hashlib.sha256()
    offsets = np.linspace(0, max(size - _SAMPLE_CHUNK, 0), _SAMPLE_COUNT).astype(np.int64)
    with open(path, "rb") as handle:
        for offset in sorted(set(offsets.tolist())):
            handle.seek(offset)
            digest.update(handle.read(_SAMPLE_CHUNK))
    return digest.hexdigest()


def _stat_key(stat: os.stat_result) -> list[int]:
    """What changes whenever a file's content can have changed: size, mtime, ctime, inode, device.

    ``ctime`` cannot be set by a user (``os.utime`` sets it to now), so writing a byte and restoring
    the mtime still changes the key.
    """
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _checked_sha256(path: Path) -> tuple[str, list[int] | None]:
    """Full sha256 of ``path`` and the stat key to cache it under (None: changing, or racy)."""
    before = os.stat(path)
    digest = sha256_file(path)
    after = os.stat(path)
    key = _stat_key(after)
    if key != _stat_key(before) or time.time() - max(after.st_mtime, after.st_ctime) < RACY_SECONDS:
        return digest, None
    return digest, key


def _file_record(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Manifest record of a file just written, and its verification-cache entry (if not racy)."""
    digest, key = _checked_sha256(path)
    size = path.stat().st_size
    record: dict[str, Any] = {"size": size, "sha256": digest}
    if size > FULL_HASH_LIMIT:
        record["sampled_sha256"] = _sampled_sha256(path, size)
    return record, (None if key is None else {"stat": key, "sha256": digest})


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
    overwrite: bool = False,
) -> Path:
    """Write a complete store at ``out_dir`` atomically and return its path.

    ``splits`` maps a split name to ``(images uint8 N×H×W×3, labels int64, class names)``.
    ``sources`` maps a split name to the input files it was read from (hashed into the manifest).
    Nothing appears at ``out_dir`` unless every split was written. ``out_dir`` may be absent or an
    empty folder; a store written before is replaced only with ``overwrite=True``; anything else
    is refused (``check_store_target``), before any work and again just before the rename.
    """
    from metantk_nas.provenance import collect

    if not splits:
        raise ValueError(f"{out_dir}: no splits to write")
    sizes = {int(images.shape[1]) for images, _, _ in splits.values()}
    if len(sizes) != 1:
        raise ValueError(f"{out_dir}: all splits must share one image size, got {sorted(sizes)}")
    target = Path(out_dir)
    for split in splits:
        if not _SPLIT_NAME.fullmatch(str(split)):
            raise ValueError(f"{target}: split name {split!r} must be a plain folder name (letters, digits, _ or -)")
    with atomic_directory(target, replace=lambda path: check_store_target(path, overwrite)) as tmp:
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
    (folder / "classes.json").write_text(json.dumps(classes, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    mean, std = channel_stats(images)
    per_class = np.bincount(labels, minlength=len(classes))
    records, cache = {}, {}
    for fname in SPLIT_FILES:
        records[fname], entry = _file_record(folder / fname)
        if entry is not None:
            cache[fname] = entry
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
        "files": records,
    }
    write_json(folder / "manifest.json", manifest)
    if cache:  # the hashes just computed for the manifest: the first open need not repeat them
        _write_verify_cache(folder, cache)


def read_dataset_info(store_dir: str | os.PathLike) -> dict[str, Any]:
    """``dataset.json`` of a store, checked for the format version."""
    info = read_json(Path(store_dir) / "dataset.json")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{Path(store_dir) / 'dataset.json'}: format_version {info.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return info


def _is_regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _load_json_object(path: Path) -> dict[str, Any] | None:
    if not _is_regular_file(path):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_our_dataset_json(path: Path) -> bool:
    info = _load_json_object(path)
    return (info is not None and info.get("format_version") == FORMAT_VERSION
            and isinstance(info.get("name"), str) and isinstance(info.get("format"), str)
            and isinstance(info.get("splits"), list) and "provenance" in info)


def _is_our_manifest(path: Path, split: str) -> bool:
    manifest = _load_json_object(path)
    return (manifest is not None and manifest.get("format_version") == FORMAT_VERSION
            and manifest.get("split") == split and isinstance(manifest.get("files"), dict)
            and set(manifest["files"]) == set(SPLIT_FILES))


def foreign_entry(folder: str | os.PathLike) -> tuple[Path, str] | None:
    """The first entry of ``folder`` that a store written by ``write_store`` would not hold, with why.

    A store holds at most ``dataset.json`` (of this format) and split folders, each with a
    ``manifest.json`` of this format naming that split, and nothing but the split's files, the
    verification cache and leftovers of its atomic writes. ``dataset.json`` may be missing
    (Snakemake deletes a job's declared output before re-running it). None: nothing foreign.
    """
    folder = Path(folder)
    for entry in sorted(folder.iterdir()):
        if entry.name == "dataset.json":
            if not _is_our_dataset_json(entry):
                return entry, f"not a dataset.json written by metantk-nas prepare (format_version {FORMAT_VERSION})"
            continue
        if entry.is_symlink() or not entry.is_dir():
            return entry, "not part of a store written by metantk-nas prepare"
        if not _is_our_manifest(entry / "manifest.json", entry.name):
            return entry, "a folder without the manifest.json of a store split written by metantk-nas prepare"
        allowed = {*SPLIT_FILES, "manifest.json", VERIFY_CACHE}
        for item in sorted(entry.iterdir()):
            ours = item.name in allowed or is_temp_name(item.name, VERIFY_CACHE)
            if not ours or not _is_regular_file(item):
                return item, "not a file of a store split written by metantk-nas prepare"
    return None


def is_store_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a non-empty folder holding only a store written before (``foreign_entry``)."""
    folder = Path(folder)
    return (folder.is_dir() and not folder.is_symlink() and any(folder.iterdir())
            and foreign_entry(folder) is None)


def check_store_target(out_dir: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse an ``out_dir`` that a new store must not replace; return when it may be written.

    Allowed: nothing there, an empty folder, or (only with ``overwrite``) a store written before.
    Refused with ``OutputExists`` naming the path: a file or symbolic link, a folder holding
    anything else (the first foreign entry is named), a store without ``overwrite``.
    """
    out = Path(out_dir)
    if not os.path.lexists(out):
        return
    if out.is_symlink():
        raise OutputExists(f"{out}: is a symbolic link; refusing to replace it (the store folder must be "
                           "new, empty, or a store written before)")
    if not out.is_dir():
        raise OutputExists(f"{out}: is a file, not a folder; refusing to replace it (the store folder must be "
                           "new, empty, or a store written before)")
    if not any(out.iterdir()):
        return
    foreign = foreign_entry(out)
    if foreign is not None:
        path, why = foreign
        raise OutputExists(f"{path}: {why}; refusing to replace {out} (move it away or choose another output folder)")
    if not overwrite:
        raise OutputExists(f"{out}: holds a store written before; pass --force to replace it")


def check_out_vs_root(out_dir: str | os.PathLike, root: str | os.PathLike) -> None:
    """Refuse an output folder equal to, inside, or holding the raw dataset folder ``root``.

    Replacing such a folder would delete the raw dataset. Symbolic links are followed.
    """
    out, raw = Path(os.path.realpath(out_dir)), Path(os.path.realpath(root))
    if out == raw:
        raise OutputExists(f"--out {out_dir} is the dataset folder --root {root}; refusing to replace the raw "
                           "dataset (choose an --out outside --root)")
    if out.is_relative_to(raw):
        raise OutputExists(f"--out {out_dir} is inside the dataset folder --root {root}; refusing to write into "
                           "the raw dataset (choose an --out outside --root)")
    if raw.is_relative_to(out):
        raise OutputExists(f"--out {out_dir} holds the dataset folder --root {root}; replacing it would delete "
                           "the raw dataset (choose an --out outside --root)")


def _user_cache_file(folder: Path) -> Path:
    """Where the verification cache of a read-only split lives: the user's cache folder, keyed by path."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:32]
    return base / "metantk-nas" / "verified" / f"{key}.json"


def _verify_cache_file(folder: Path) -> Path:
    return folder / VERIFY_CACHE if os.access(folder, os.W_OK) else _user_cache_file(folder)


def _read_verify_cache(folder: Path) -> dict[str, Any]:
    """The cache entries of ``folder`` ({file: {"stat", "sha256"}}); empty when absent or unreadable."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(_verify_cache_file(folder).read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("format_version") == FORMAT_VERSION \
                and isinstance(data.get("files"), dict):
            return data["files"]
    return {}


def _write_verify_cache(folder: Path, entries: Mapping[str, Any]) -> None:
    """Remember verified hashes; silently skipped where neither the split nor the user cache is writable."""
    payload = {"format_version": FORMAT_VERSION, "files": dict(entries)}
    with contextlib.suppress(OSError):
        write_json(_verify_cache_file(folder), payload)


def verify_split_files(
    folder: Path, manifest: Mapping[str, Any], mode: Literal["cached", "sampled", "full"] = "cached",
) -> None:
    """Refuse a split whose files differ from what the manifest recorded at write time.

    ``"cached"`` (the default) compares the full sha256 of every file, but skips a file whose
    (size, mtime, ctime, inode, device) match the entry remembered the last time its full hash was
    checked (``VERIFY_CACHE`` in the split folder, or the user's cache folder when the split is
    read-only). ``"full"`` hashes everything every time; ``"sampled"`` hashes a sample of files
    over ``FULL_HASH_LIMIT`` (fast, but blind to a byte changed between samples).
    """
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        raise ValueError(f"{folder / 'manifest.json'}: missing key 'files'")
    cache = _read_verify_cache(folder) if mode == "cached" else {}
    fresh: dict[str, Any] = {}
    for fname in SPLIT_FILES:
        path = folder / fname
        record = files.get(fname)
        if not isinstance(record, Mapping) or "size" not in record or "sha256" not in record:
            raise ValueError(f"{folder / 'manifest.json'}: no entry with size and sha256 for {fname} under 'files'")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (listed in the manifest)")
        stat = path.stat()
        if stat.st_size != record["size"]:
            raise ValueError(f"{path}: size {stat.st_size} differs from the manifest ({record['size']}); "
                             "the store was modified")
        if mode == "cached":
            entry = cache.get(fname)
            if isinstance(entry, Mapping) and entry.get("stat") == _stat_key(stat) \
                    and entry.get("sha256") == record["sha256"]:
                fresh[fname] = entry
                continue
        key = None
        if mode == "sampled" and "sampled_sha256" in record:
            actual, expected, what = _sampled_sha256(path, stat.st_size), record["sampled_sha256"], "sampled sha256"
        else:
            (actual, key), expected, what = _checked_sha256(path), record["sha256"], "sha256"
        if actual != expected:
            raise ValueError(f"{path}: {what} differs from the manifest; the store was modified")
        if mode == "cached" and key is not None:
            fresh[fname] = {"stat": key, "sha256": actual}
    if mode == "cached" and fresh != {k: v for k, v in cache.items() if k in SPLIT_FILES}:
        _write_verify_cache(folder, fresh)


def open_split(store_dir: str | os.PathLike, split: str, verify: Verify = True) -> Split:
    """Open one split of a store, images memory-mapped.

    ``verify``: ``True``/``"cached"`` refuses a file changed by even one byte at every size: the
    full sha256, checked once and remembered per (size, mtime, ctime, inode) so later opens cost a
    ``stat`` (see ``verify_split_files``); ``"full"`` hashes everything on every open;
    ``"sampled"`` hashes only samples of large images (fast, misses a byte between samples);
    ``False`` skips the check (e.g. in worker processes after the parent verified).
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
        if verify not in (True, "cached", "sampled", "full"):
            raise ValueError(f"verify must be True, False, 'cached', 'sampled' or 'full', got {verify!r}")
        verify_split_files(folder, manifest, "cached" if verify is True else verify)
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

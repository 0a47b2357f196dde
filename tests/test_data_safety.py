"""``prepare`` never destroys what it did not write; stores changed by one byte are refused at every size.

Each case of the data-safety issue: user files kept, the raw dataset kept, a regular file kept,
``--force`` replaces only a store, leftovers of a killed run cleaned, the umask honoured, one
changed byte refused on a store over 64 MiB, a second writer refused or waiting.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from metantk_nas.cli import main
from metantk_nas.data import store
from metantk_nas.data.fixtures import write_rfs_fc100_fixture
from metantk_nas.data.store import VERIFY_CACHE, open_split, write_store
from metantk_nas.io import OWNER_MARKER, output_lock

pytestmark = pytest.mark.filterwarnings("ignore:.*standard FC100:UserWarning")
SRC = Path(__file__).resolve().parents[1] / "src"


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with its sha256: what must survive a refusal."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def raw(tmp_path):
    """An FC100 download in the RFS layout: ``raw/FC100/{train,val,test}.pickle``."""
    write_rfs_fc100_fixture(tmp_path / "raw", images_per_class=1)
    return tmp_path / "raw"


def _prepare(raw: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "--format", "rfs-fc100", "--root", str(raw), "--out", str(out), *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    assert err[0].startswith("metantk-nas prepare: error: ")
    return err[0]


def test_a_folder_of_user_files_is_refused_and_kept(tmp_path, raw, capsys):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.bin").write_bytes(b"\1\2")
    before = _tree(out)
    for extra in ((), ("--force",)):
        assert _prepare(raw, out, *extra) == 1
        assert "notes.txt: not part of a store written by metantk-nas prepare; refusing to replace" in _error(capsys)
        assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # refused before taking the lock


@pytest.mark.parametrize("where", ["root", "inside", "benchmark folder", "around"])
def test_the_raw_dataset_is_never_replaced(tmp_path, raw, capsys, where):
    before = _tree(raw)
    out = {"root": raw, "inside": raw / "stores" / "fc100", "benchmark folder": raw / "FC100",
           "around": tmp_path}[where]
    for extra in ((), ("--force",)):
        assert _prepare(raw, out, *extra) == 1
        message = _error(capsys)
        assert f"--out {out} " in message and f"--root {raw}" in message and "choose an --out outside --root" in message
    assert _tree(raw) == before
    assert not (raw / "stores").exists()


def test_the_raw_dataset_through_a_symbolic_link(tmp_path, raw, capsys):
    (tmp_path / "alias").symlink_to(raw)
    before = _tree(raw)
    assert _prepare(raw, tmp_path / "alias" / "FC100", "--force") == 1
    assert "is inside the dataset folder" in _error(capsys)
    assert _tree(raw) == before


def test_a_regular_file_at_out_is_kept(tmp_path, raw, capsys):
    out = tmp_path / "store"
    out.write_text("precious")
    assert _prepare(raw, out, "--force") == 1
    assert "store: is a file, not a folder; refusing to replace it" in _error(capsys)
    assert out.read_text() == "precious"
    assert main(["prepare", "--format", "glyphs", "--out", str(out), "--force"]) == 1  # before any rendering
    assert "is a file" in _error(capsys) and out.read_text() == "precious"


def test_force_replaces_only_a_store(tmp_path, raw, capsys):
    out = tmp_path / "out"
    out.mkdir()  # Snakemake creates the output's folder: an empty folder is fine
    assert _prepare(raw, out) == 0
    first = _tree(out)
    assert {"dataset.json", "train/manifest.json", f"train/{VERIFY_CACHE}"} <= set(first) or \
        {"dataset.json", "train/manifest.json"} <= set(first)
    capsys.readouterr()
    assert _prepare(raw, out) == 1
    assert f"{out}: holds a store written before; pass --force to replace it" in _error(capsys)
    assert _tree(out) == first
    inode = (out / "train" / "images.npy").stat().st_ino
    assert _prepare(raw, out, "--force") == 0
    assert (out / "train" / "images.npy").stat().st_ino != inode  # really rewritten
    # Snakemake deletes the declared output (dataset.json) before re-running the job.
    (out / "dataset.json").unlink()
    assert _prepare(raw, out, "--force") == 0
    assert (out / "dataset.json").is_file() and open_split(out, "test").num_classes == 20
    capsys.readouterr()
    # A foreign file anywhere in the store: refused even with --force, naming the file.
    for foreign in (out / "val" / "extra.npy", out / "README", out / "val" / "images.npy.bak"):
        foreign.write_bytes(b"user")
        before = _tree(out)
        assert _prepare(raw, out, "--force") == 1
        assert f"{foreign}: not " in _error(capsys)
        assert _tree(out) == before
        foreign.unlink()
    # A folder that merely looks like a split, and a dataset.json of another program.
    (out / "train" / "manifest.json").write_text('{"name": "somebody else"}')
    assert _prepare(raw, out, "--force") == 1
    assert f"{out / 'train'}: a folder without the manifest.json of a store split" in _error(capsys)
    assert (out / "train" / "manifest.json").read_text() == '{"name": "somebody else"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out", "raw"]


def _dead_leftover(parent: Path, name: str) -> Path:
    folder = parent / name
    (folder / "data" / "train").mkdir(parents=True)
    (folder / "data" / "train" / "images.npy").write_bytes(b"\0" * 4096)
    (folder / OWNER_MARKER).write_text('{"pid": 4194303, "host": "node-that-died", "since": 0}')
    return folder


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path, raw, capsys):
    out = tmp_path / "out"
    dead = [_dead_leftover(tmp_path, ".out.metantk-k1ll3d00.tmp"),
            _dead_leftover(tmp_path, ".out.metantk-scratch-k1ll3d01.tmp")]
    lookalike = tmp_path / ".out.metantk-u5er0000.tmp"  # no marker: not provably ours
    lookalike.mkdir()
    (lookalike / "keep.txt").write_text("mine")
    assert _prepare(raw, out) == 0
    err = capsys.readouterr().err
    assert all(f"removed {path} (left by a killed run)" in err for path in dead)
    assert not any(path.exists() for path in dead)
    assert (lookalike / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", ".out.metantk-u5er0000.tmp", "out", "raw"]


def test_a_prepare_killed_while_writing_is_cleaned_up_by_the_next(tmp_path, raw, capsys):
    """A real SIGKILL while the store is being written (a real format: its scratch folder is left too)."""
    out = tmp_path / "out"
    argv = ["prepare", "--format", "rfs-fc100", "--root", str(raw), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-c", "import sys; from metantk_nas.cli import main; "
                                "sys.exit(main(sys.argv[1:]))", *argv],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # Every split is written and the provenance is being collected: the store is half-way.
        while not list(tmp_path.glob(".out.metantk-*.tmp/data/test/manifest.json")):
            assert process.poll() is None and time.monotonic() < deadline, "prepare ended before writing"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.glob(".out.metantk-*.tmp"))
    assert len(left) == 2 and any("scratch-" in name for name in left) and not out.exists()
    assert _prepare(raw, out) == 0
    err = capsys.readouterr().err
    assert all(f"removed {tmp_path / name} (left by a killed run)" in err for name in left)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out", "raw"]
    assert [open_split(out, split, verify="full").num_classes for split in ("train", "val", "test")] \
        == [60, 20, 20]


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_the_store_follows_the_umask(tmp_path, raw, mask):
    previous = os.umask(mask)
    try:
        assert _prepare(raw, tmp_path / "out") == 0
    finally:
        os.umask(previous)
    out = tmp_path / "out"
    paths = [out, *out.rglob("*")]
    assert len(paths) > 10
    for path in paths:
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_one_changed_byte_is_refused_on_a_store_over_64_mib(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RACY_SECONDS", 0.0)  # cache the hashes of the files just written
    n, size = 2500, 96  # 2500 × 96 × 96 × 3 = 69 MB of train images
    images = np.broadcast_to(np.arange(size * size * 3, dtype=np.uint8).reshape(1, size, size, 3), (n, size, size, 3))
    labels = np.repeat(np.arange(5, dtype=np.int64), n // 5)
    small = (np.zeros((2, size, size, 3), dtype=np.uint8), np.array([0, 1], dtype=np.int64), ["a", "b"])
    path = write_store(tmp_path / "big", "big", "test",
                       {"train": (images, labels, [str(c) for c in range(5)]), "val": small}, {})
    target = path / "train" / "images.npy"
    assert target.stat().st_size > store.FULL_HASH_LIMIT
    hashed = []
    real_sha256 = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda p: hashed.append(Path(p).name) or real_sha256(p))
    open_split(path, "train")
    assert hashed == []  # verified at write time: a later open costs a stat
    before = os.stat(target)
    offset = before.st_size // 2 + 12345  # between the sampled chunks
    with open(target, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # sneaky: the mtime is restored
    after = os.stat(target)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ValueError, match=r"train/images.npy: sha256 differs from the manifest"):
        open_split(path, "train")
    assert "images.npy" in hashed
    open_split(path, "train", verify="sampled")  # the sampled opt-out is blind to it, as documented
    with pytest.raises(ValueError, match="sha256 differs"):
        open_split(path, "train")  # still refused: a failed check is never cached


def test_the_verification_cache_of_a_read_only_store_lives_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RACY_SECONDS", 0.0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    split = (rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), np.array([0, 0, 1, 1]), ["a", "b"])
    path = write_store(tmp_path / "s", "s", "test", {"train": split}, {})
    (path / "train" / VERIFY_CACHE).unlink()
    monkeypatch.setattr(store.os, "access", lambda p, mode: False)  # as a read-only folder
    hashed = []
    real_sha256 = store.sha256_file
    monkeypatch.setattr(store, "sha256_file", lambda p: hashed.append(Path(p).name) or real_sha256(p))
    open_split(path, "train")
    assert len(hashed) == 3 and not (path / "train" / VERIFY_CACHE).exists()
    assert len(list((tmp_path / "cache" / "metantk-nas" / "verified").glob("*.json"))) == 1
    open_split(path, "train")
    assert len(hashed) == 3


def test_a_second_writer_is_refused_or_waits(tmp_path, raw, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        assert _prepare(raw, out) == 1
        assert (f"{out}: another process (pid {os.getpid()} on " in (message := _error(capsys))
                and "(pass --wait to wait for it)" in message)
    assert not out.exists()
    held = threading.Event()

    def holder():
        with output_lock(out):
            held.set()
            time.sleep(1.0)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    assert _prepare(raw, out, "--wait") == 0
    thread.join()
    assert f"{out}: waiting for another process (pid {os.getpid()} on " in capsys.readouterr().err
    assert open_split(out, "val").num_classes == 20


@pytest.mark.parametrize(("argv", "expected"), [
    (["--image-size", "100000"], "image_size must be an integer in 8..512, got 100000"),
    (["--image-size", "4"], "image_size must be an integer in 8..512, got 4"),
    (["--images-per-class", "0"], "images_per_class must be an integer in 1..10000, got 0"),
    (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
    (["--image-size", "512", "--images-per-class", "10000"], "needs 3.*GiB of memory for the images"),
])
def test_glyph_sizes_are_checked_up_front(tmp_path, capsys, monkeypatch, argv, expected):
    from metantk_nas.data import glyphs

    def no_rendering():
        raise AssertionError("rendering started before the arguments were checked")

    monkeypatch.setattr(glyphs, "glyph_classes", no_rendering)
    assert main(["prepare", "--format", "glyphs", "--out", str(tmp_path / "g"), *argv]) == 1
    assert re.search(expected, _error(capsys))
    assert list(tmp_path.iterdir()) == []


def test_inspect_does_not_replace_an_existing_grid(tmp_path, raw, capsys):
    assert _prepare(raw, tmp_path / "s") == 0
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"my picture")
    assert main(["inspect", str(tmp_path / "s"), "--grid", str(grid)]) == 1
    assert "grid.png: exists; refusing to replace it (pass --force to replace a file)" in capsys.readouterr().err
    assert grid.read_bytes() == b"my picture"
    assert main(["inspect", str(tmp_path / "s"), "--grid", str(grid), "--force", "--classes", "2"]) == 0
    assert grid.read_bytes().startswith(b"\x89PNG")

"""metantk_nas.io: atomic writes that honour the umask, never replace what they cannot vouch for,
clean the leftovers of killed writers (only those), and lock an output against a second writer."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from metantk_nas import io
from metantk_nas.io import (
    OWNER_MARKER, OutputExists, OutputLocked, atomic_directory, atomic_write_text, output_lock, remove_leftovers,
    temporary_directory,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask():
    """Set a umask for the test, restore the previous one afterwards."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert io.current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_directory(tmp_path / "folder") as tmp:
        (tmp / "inner").mkdir()
        atomic_write_text(tmp / "inner" / "b.json", "{}")
        (tmp / "c.bin").write_bytes(b"1")
    with output_lock(tmp_path / "folder"):
        pass
    files = [tmp_path / "a.txt", tmp_path / "folder" / "inner" / "b.json", tmp_path / "folder" / "c.bin",
             tmp_path / ".folder.lock"]
    assert {p.name: _mode(p) for p in files} == {p.name: 0o666 & ~mask for p in files}
    folders = [tmp_path / "folder", tmp_path / "folder" / "inner"]
    assert {p.name: _mode(p) for p in folders} == {p.name: 0o777 & ~mask for p in folders}


def test_atomic_directory_refuses_what_it_cannot_vouch_for(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(OutputExists, match="user: folder is not empty"):
        with atomic_directory(user) as tmp:
            (tmp / "x").write_text("new")
    regular = tmp_path / "file"
    regular.write_text("keep")
    with pytest.raises(OutputExists, match="file: is a file"):
        with atomic_directory(regular):
            pass
    link = tmp_path / "link"
    link.symlink_to(user)
    with pytest.raises(OutputExists, match="link: is a symbolic link"):
        with atomic_directory(link):
            pass
    assert (user / "notes.txt").read_text() == "mine" and regular.read_text() == "keep" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "link", "user"]


def test_atomic_directory_replaces_an_empty_folder_and_keeps_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "half").write_text("partial")
            raise RuntimeError("boom")
    assert target.is_dir() and not any(target.iterdir())
    with atomic_directory(target) as tmp:
        (tmp / "done").write_text("ok")
    assert [p.name for p in target.iterdir()] == ["done"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_added_during_the_write_is_not_lost(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "ours").write_text("old")

    def only_ours(path: Path) -> None:
        foreign = [p.name for p in path.iterdir() if p.name != "ours"]
        if foreign:
            raise OutputExists(f"{path / foreign[0]}: foreign")

    with pytest.raises(OutputExists, match="out/late: foreign"):
        with atomic_directory(target, replace=only_ours) as tmp:
            (tmp / "ours").write_text("new")
            (target / "late").write_text("user")  # appears after the first check
    assert (target / "late").read_text() == "user" and (target / "ours").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_second_check_after_moving_aside_restores_the_old_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "ours").write_text("old")
    calls = []

    def flaky(path: Path) -> None:  # passes before the work and before the move, refuses the moved folder
        calls.append(path)
        if len(calls) == 3:
            (path / "sneaked").write_text("user")
            raise OutputExists(f"{path}: refused")

    with pytest.raises(OutputExists, match="refused"):
        with atomic_directory(target, replace=flaky) as tmp:
            (tmp / "ours").write_text("new")
    assert calls[2].name == "old" and calls[3] == target  # re-checked where it is, to name it there
    assert (target / "ours").read_text() == "old" and (target / "sneaked").read_text() == "user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _fake_leftover(parent: Path, name: str, marker: bool = True) -> Path:
    folder = parent / name
    (folder / "data" / "train").mkdir(parents=True)
    (folder / "data" / "train" / "images.npy").write_bytes(b"\0" * 1000)
    if marker:
        (folder / OWNER_MARKER).write_text(json.dumps({"pid": 2**22 + 12345, "host": "gone", "since": 0}))
    return folder


def test_leftovers_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    target = tmp_path / "store"
    dead = _fake_leftover(tmp_path, ".store.metantk-abcd1234.tmp")
    lookalike = _fake_leftover(tmp_path, ".store.metantk-user0000.tmp", marker=False)
    other_target = _fake_leftover(tmp_path, ".other.metantk-abcd1234.tmp")
    untagged = _fake_leftover(tmp_path, ".store.abcd1234.tmp")  # the name of the old, unmarked temps
    with temporary_directory(target) as live:  # a live writer's folder: its marker is locked
        assert remove_leftovers(target) == [dead]
        assert live.is_dir()
    assert not live.exists() and not dead.exists()
    assert lookalike.is_dir() and other_target.is_dir() and untagged.is_dir()


def test_a_leftover_locked_by_another_open_file_is_kept(tmp_path):
    dead = _fake_leftover(tmp_path, ".store.metantk-abcd1234.tmp")
    with open(dead / OWNER_MARKER) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert remove_leftovers(tmp_path / "store") == []
    assert remove_leftovers(tmp_path / "store") == [dead]


def test_temp_file_leftovers(tmp_path):
    target = tmp_path / "model.pt"
    old = time.time() - 3600
    dead = tmp_path / ".model.pt.metantk-abcd1234.tmp.pt"
    fresh = tmp_path / ".model.pt.metantk-efgh5678.tmp.pt"
    locked = tmp_path / ".model.pt.metantk-ijkl9012.tmp.pt"
    untagged = tmp_path / ".model.pt.abcd1234.tmp.pt"
    for path in (dead, fresh, locked, untagged):
        path.write_bytes(b"partial")
    for path in (dead, locked, untagged):
        os.utime(path, (old, old))
    with open(locked) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        atomic_write_text(target, "done")
    assert not dead.exists()
    assert fresh.exists() and locked.exists() and untagged.exists()  # too young, alive, not ours
    assert target.read_text() == "done"


def test_output_lock_refuses_or_waits(tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        with pytest.raises(OutputLocked, match=rf"out: another process \(pid {os.getpid()} on .*\) is writing this "
                                               r"output; refusing to write it at the same time \(use --wait\)"):
            with output_lock(out, hint=" (use --wait)"):
                pass
    held = threading.Event()

    def holder():
        with output_lock(out):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    start = time.monotonic()
    with output_lock(out, wait=True):
        waited = time.monotonic() - start
    thread.join()
    assert waited > 0.3
    assert "waiting for another process" in capsys.readouterr().err
    assert (tmp_path / ".out.lock").is_file() and not out.exists()

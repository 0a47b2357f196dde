"""Safe output writing: a result is either complete or absent, never partial, and never at the cost
of something this package did not write.

* ``atomic_path`` / ``atomic_directory`` write beside the target and rename on success.
* Their temporary files and folders are recognisable as ours (``.NAME.metantk-XXXXXXXX.tmp…``) and
  carry a liveness lock, so the next writer of the same target removes what a killed run left
  behind (``remove_leftovers``) and never a live writer's temp or a user's look-alike.
* Outputs get the modes a plain ``open``/``mkdir`` gives under the current umask (``mkstemp`` and
  ``mkdtemp`` alone would give 0600/0700).
* ``atomic_directory`` replaces an existing folder only when the caller vouches for it (``replace``).
* ``output_lock`` keeps a second process from writing the same output at the same time.
* Every result goes through one writer per kind: ``write_json`` (standard JSON, infinity spelled
  ``"inf"``), ``write_csv`` (the ``csv`` module, ``\\n`` line ends), ``save_figure`` (SVG + PNG).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from metantk_nas.options import INF

#: Tag in the name of every temporary file/folder this module creates (``.NAME.metantk-XXXXXXXX.tmp``).
TEMP_TAG = "metantk-"
#: Marker inside a temporary folder: JSON with the owner's pid and host, locked (``flock``) while it lives.
OWNER_MARKER = ".metantk-nas-owner"
#: A temporary *file* (which cannot hold a marker) is removed as a leftover only when unlocked and
#: older than this: it closes the microseconds between its creation and its owner's lock.
FILE_LEFTOVER_AGE_S = 10.0
#: ``errno`` values meaning "this filesystem cannot lock" (some network filesystems).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class OutputExists(FileExistsError, ValueError):
    """Refusal to replace something at an output path (a ``ValueError`` too, so CLIs report it in one line)."""


class OutputLocked(BlockingIOError, ValueError):
    """Another process holds the output lock of the same output."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _try_lock(fd: int) -> bool:
    """Non-blocking exclusive ``flock``; False when another open file holds it or locks are unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _owner_record() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, allow_nan=False)


def _temp_pattern(name: str, suffix: str = "") -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.{re.escape(TEMP_TAG)}[A-Za-z0-9_-]+\.tmp{re.escape(suffix)}")


def is_temp_name(name: str, target_name: str) -> bool:
    """Whether ``name`` is the name of a temporary file/folder this module makes for ``target_name``."""
    suffix = Path(target_name).suffix
    return bool(_temp_pattern(target_name, suffix).fullmatch(name) or _temp_pattern(target_name).fullmatch(name))


def _remove_tree_marker_last(folder: Path) -> None:
    """Remove a marked temp folder, its marker last: a removal cut short stays recognisable."""
    for entry in os.scandir(folder):
        if entry.name == OWNER_MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / OWNER_MARKER)
    os.rmdir(folder)


def _dead_temp_folder(path: Path) -> bool:
    """Remove ``path`` if it is our temp folder whose owner is gone; True when removed."""
    marker = path / OWNER_MARKER
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # no marker: a user's look-alike, or ours in its first microseconds
    try:
        if not _try_lock(fd):
            return False  # its owner is alive (or this filesystem cannot tell)
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(marker))
        except OSError:
            same = False
        if not same:
            return False  # removed or replaced meanwhile
        _remove_tree_marker_last(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _dead_temp_file(path: Path) -> bool:
    """Remove ``path`` if it is our temp file, unlocked and older than ``FILE_LEFTOVER_AGE_S``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        stat = os.fstat(fd)
        if time.time() - stat.st_mtime < FILE_LEFTOVER_AGE_S or not _try_lock(fd):
            return False
        if not os.path.samestat(stat, os.lstat(path)):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files/folders that killed writers of ``path`` left beside it.

    Only entries named ``.NAME.metantk-XXXXXXXX.tmp[SUFFIX]``, owned by no live process, are
    removed: a folder must hold the owner marker and its lock must be free (a live writer holds
    it until it finishes); a file must be unlocked and older than ``FILE_LEFTOVER_AGE_S``.
    Returns what was removed.
    """
    target = Path(os.path.abspath(path))
    if not target.name:
        return []
    patterns = (_temp_pattern(target.name), _temp_pattern(target.name, target.suffix))
    removed = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        if not any(pattern.fullmatch(entry.name) for pattern in patterns):
            continue
        candidate = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            gone = _dead_temp_folder(candidate)
        elif entry.is_file(follow_symlinks=False):
            gone = _dead_temp_file(candidate)
        else:
            gone = False
        if gone:
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Use for writers that want a file name (``torch.save``, ``np.save``, ``savefig``). The file
    gets the umask's mode, and leftovers of killed writers of the same ``path`` are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{TEMP_TAG}", suffix=".tmp" + target.suffix,
                                    dir=target.parent)
    tmp = Path(tmp_name)
    try:
        _try_lock(fd)  # held until the rename: tells remove_leftovers that the writer is alive
        with contextlib.suppress(OSError):  # a filesystem without modes keeps its own
            os.fchmod(fd, 0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and dataclasses into JSON types.

    Floats JSON cannot hold get the package's one spelling: ±infinity becomes the string ``"inf"``
    / ``"-inf"`` (:data:`metantk_nas.options.INF`, as in settings files and on command lines), NaN
    becomes ``null``; inside numpy arrays too.
    """
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch
        return to_jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (INF if value > 0 else "-" + INF)
    return value


def json_text(payload: Any, indent: int | None = 2) -> str:
    """``payload`` as standard JSON text (:func:`to_jsonable`; never ``Infinity`` or ``NaN``), newline-ended."""
    return json.dumps(to_jsonable(payload), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as pretty, standard JSON (:func:`json_text`), atomically."""
    atomic_write_text(path, json_text(payload))


def float_from_json(value: Any) -> Any:
    """Undo :func:`to_jsonable` for a number: ``"inf"``/``"-inf"`` become floats, anything else stays."""
    if isinstance(value, str) and value in (INF, "-" + INF):
        return float(value)
    return value


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file with a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text: a header of ``columns``, then one line per row, every line ended by ``\\n``.

    The package's one CSV writer (the standard ``csv`` module: ``str`` of each value, ``None`` as an
    empty cell, quoting only where needed). A row lacking a column, or holding one not in
    ``columns``, is an error: a file's columns are fixed by its writer.
    """
    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in rows:
        missing = [column for column in columns if column not in row]
        if missing:
            raise ValueError(f"row lacks column(s) {missing}: {dict(row)!r}")
        writer.writerow(row)
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write :func:`csv_text` of ``rows`` to ``path`` atomically."""
    atomic_write_text(path, csv_text(columns, rows))


def save_figure(figure: Any, out_dir: str | os.PathLike, stem: str, *, dpi: int = 150,
                tight: bool = True) -> list[Path]:
    """Write a matplotlib figure as ``out_dir/stem.svg`` and ``.png`` (at ``dpi``), each atomically.

    ``tight`` crops to the drawn content (``bbox_inches="tight"``). A figure made through pyplot is
    closed afterwards (a plain ``Figure`` is not registered there and needs no closing).

    Returns:
        The two paths, SVG first.
    """
    paths = []
    for fmt in ("svg", "png"):
        path = Path(out_dir) / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=fmt, dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
        paths.append(path)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)
    return paths


@contextlib.contextmanager
def temporary_directory(path: str | os.PathLike, tag: str = "") -> Iterator[Path]:
    """A marked scratch folder beside ``path`` (``.NAME.metantk-[TAG]XXXXXXXX.tmp``), removed on exit.

    Unlike ``tempfile.TemporaryDirectory``, a folder left by a killed process is recognised and
    removed by the next ``remove_leftovers(path)`` (every ``atomic_directory(path)`` calls it).
    The yielded folder is the marked folder itself (mode 0700: scratch, never an output).
    """
    target = Path(os.path.abspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f".{target.name}.{TEMP_TAG}{tag}", suffix=".tmp", dir=target.parent))
    fd = -1
    try:
        # The marker appears under its final name only once locked, so a scan never sees it unlocked
        # while its owner lives.
        pending = root / (OWNER_MARKER + ".new")
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        _try_lock(fd)
        os.write(fd, _owner_record().encode())
        os.rename(pending, root / OWNER_MARKER)
        yield root
    finally:
        with contextlib.suppress(OSError):
            _remove_tree_marker_last(root)
        if fd >= 0:
            os.close(fd)


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, *, replace: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Yield a fresh folder to fill; it appears at ``path`` only when the body succeeds.

    An existing ``path`` is replaced only if it is an empty folder, or if ``replace(path)`` returns
    (it must raise to refuse; it runs again on the old folder once moved aside, so nothing added
    meanwhile is lost). A file or symbolic link at ``path`` is never replaced. Nothing is left at
    ``path`` (nor the old folder touched) when the body raises. Everything in flight lives in one
    marked temp folder beside ``path`` that a killed run leaves for ``remove_leftovers``.
    The new folder and what the body creates in it get the umask's modes.
    """
    target = Path(os.path.abspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    _check_replaceable(target, replace)  # fail before the work, not after
    with temporary_directory(target) as root:
        data = root / "data"
        data.mkdir()
        yield data
        _check_replaceable(target, replace)
        old = root / "old"
        if os.path.lexists(target):
            os.rename(target, old)
            try:
                _check_replaceable(old, replace)
            except BaseException:
                os.rename(old, target)
                _check_replaceable(target, replace)  # the same refusal, naming the files where they are
                raise
        try:
            os.rename(data, target)
        except BaseException:
            if os.path.lexists(old):
                os.rename(old, target)
            raise
        _fsync_dir(target.parent)


def _check_replaceable(path: Path, replace: Callable[[Path], None] | None) -> None:
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        raise OutputExists(f"{path}: is a symbolic link; refusing to replace it with a folder")
    if not path.is_dir():
        raise OutputExists(f"{path}: is a file; refusing to replace it with a folder")
    if replace is not None:
        replace(path)
    elif any(os.scandir(path)):
        raise OutputExists(f"{path}: folder is not empty; refusing to replace it")


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, *, wait: bool = False, hint: str = "") -> Iterator[Path]:
    """Hold an exclusive lock on the output ``path`` (a file ``.NAME.lock`` beside it) for the block.

    A second process locking the same output is refused with ``OutputLocked`` naming the holder
    (``hint`` is appended, e.g. " (pass --wait to wait for it)"), or with ``wait=True`` waits,
    saying so on stderr. The lock dies with its process (``flock``), so a killed run never blocks the
    next; the lock file itself stays (removing it would race). On a filesystem without locks a
    warning is printed and the block runs unprotected.
    """
    target = Path(os.path.abspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            if not wait:
                raise OutputLocked(
                    f"{target}: another process ({holder}) is writing this output; refusing to write it "
                    f"at the same time{hint}"
                ) from None
            print(f"metantk-nas: {target}: waiting for another process ({holder}) writing this output to finish",
                  file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in _NO_LOCKS:
                raise
            print(f"metantk-nas: warning: {lock}: this filesystem cannot lock ({error.strerror}); "
                  "nothing stops a second process writing the same output", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, _owner_record().encode(), 0)
        yield lock
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, *, wait: bool = False, files: Sequence[str] = ()) -> Iterator[Path]:
    """Claim the output folder of a command before it works: refuse a file there, lock it for the block.

    Fails before hours of work, not after: a regular file at ``path``, an unwritable parent (the lock
    file cannot be created) and a second process writing the same outputs are reported at once.
    ``files``: lock only these names inside the folder (jobs that share a folder, one file each).
    """
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputExists(f"{target}: is a file; expected a folder for the outputs")
    with contextlib.ExitStack() as stack:
        for locked in [target / name for name in files] or [target]:
            stack.enter_context(output_lock(locked, wait=wait, hint=" (pass --wait to wait for it)"))
        yield target


def _describe_holder(fd: int) -> str:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {record['pid']} on {record['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown pid"


def read_settings_section(path: str | os.PathLike, section: str) -> dict[str, Any]:
    """The ``section`` mapping of a settings file, or the whole file when it has no such section.

    A ``.json`` file is read as JSON (a job's settings file), anything else as YAML; lets every CLI
    take a stage file (flat keys), a job's settings file or a whole workflow-style config.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = (json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)) or {}
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file") from None
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {section} options, got {type(data).__name__}")
    return dict(data[section]) if isinstance(data.get(section), dict) else dict(data)

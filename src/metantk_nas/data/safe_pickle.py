"""Loading untrusted pickles: only the globals that dataset pickles need are admitted.

A pickle can name any importable callable and have it called while loading (that is how
``os.system`` payloads work). ``find_class`` is the single point through which every
callable reaches the unpickler (GLOBAL, STACK_GLOBAL, INST, OBJ and the extension
registry all go through it), so refusing everything outside ``ALLOWED_GLOBALS`` there
means nothing else can run. The allowed names only build containers, numpy arrays,
dtypes and scalars.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, Literal

_NUMPY_CORE = ("numpy.core", "numpy._core")

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("builtins", name) for name in
     ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "complex", "bool")}
    | {("collections", "OrderedDict")}
    # Python 3 pickles of bytes at protocol < 3 (numpy array state) call _codecs.encode(text, "latin1").
    | {("_codecs", "encode")}
    | {("numpy", "ndarray"), ("numpy", "dtype")}
    | {(f"{core}.multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")}
    | {(f"{core}.numeric", "_frombuffer") for core in _NUMPY_CORE}
)


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only ``ALLOWED_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - documented in the module
        if (module, name) not in ALLOWED_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise _RefusedGlobal(f"persistent id {pid!r}")


def loads(data: bytes, encoding: Literal["latin1", "bytes", "ASCII"] = "latin1", source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler; ``source`` names the data in errors.

    ``encoding`` decides what Python-2 ``str`` objects become: ``"latin1"`` (text; needed for
    numpy arrays in py2 pickles) or ``"bytes"`` (e.g. Ren's PNG lists).
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except _RefusedGlobal as error:
        raise ValueError(
            f"{source}: refused to load the global {error.args[0]}; untrusted pickles may only hold "
            "dicts, lists, tuples, strings, numbers and numpy arrays"
        ) from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError) as error:
        raise ValueError(f"{source}: not a readable pickle (truncated or corrupt?): {error!r}") from error


def load(path: str | os.PathLike, encoding: Literal["latin1", "bytes", "ASCII"] = "latin1") -> Any:
    """Read and unpickle the file at ``path`` with the restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return loads(path.read_bytes(), encoding=encoding, source=str(path))

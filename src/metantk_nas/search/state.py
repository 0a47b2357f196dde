"""Round-state checkpoint: what a killed search needs to continue from its last finished round.

All randomness of a round is derived from ``(seed, round, candidate, repeat)``, so the state is
only the masks, the finished rounds, the trace rows and the counters — no RNG state. It is standard
JSON with an exact float round-trip (the trace's non-finite numbers spelled ``"inf"``, ``"-inf"``,
``"nan"``), written atomically after every finished round, in the work directory and never among the
declared outputs. A state written by another configuration or for another dataset is refused rather
than mixed in."""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metantk_nas.io import atomic_write_text, float_from_json, json_text

STATE_FORMAT_VERSION = 1
STATE_FILE = "search_state.json"

Masks = dict[str, list[list[bool]]]  # cell type -> 9×7 alive flags


@dataclass
class SearchState:
    """Progress of one search run."""

    config: dict[str, Any]
    dataset: dict[str, Any]
    masks: Masks
    op_rounds: int = 0  # finished op-pruning rounds
    edges_done: bool = False  # the edge stage (one unit, both cell types) is finished
    trace: list[dict[str, Any]] = field(default_factory=list)
    removals: list[dict[str, Any]] = field(default_factory=list)  # what each finished unit removed
    kernel_evaluations: int = 0
    region_evaluations: int = 0
    candidates_done: int = 0
    elapsed_seconds: float = 0.0  # compute time of all sessions so far
    sessions: int = 0  # how many times the search was (re)started


#: How the trace's NaN is spelled in the state (results write NaN as ``null``; the state must give it back).
_NAN = "nan"


def _encode_trace(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NaN numbers as ``"nan"``; :func:`metantk_nas.io.json_text` spells ±infinity ``"inf"``/``"-inf"``."""
    return [{key: _NAN if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
            for row in rows]


def _decode_trace(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``"inf"``, ``"-inf"`` and ``"nan"`` back to floats (no text column of the trace can hold them)."""
    return [{key: float(value) if value == _NAN else float_from_json(value) for key, value in row.items()}
            for row in rows]


def save_state(work_dir: str | os.PathLike, state: SearchState) -> Path:
    """Write the state atomically to ``work_dir/search_state.json``."""
    path = Path(work_dir) / STATE_FILE
    payload = {"format_version": STATE_FORMAT_VERSION, **asdict(state)}
    payload["trace"] = _encode_trace(payload["trace"])
    atomic_write_text(path, json_text(payload, indent=None))
    return path


def load_state(work_dir: str | os.PathLike, config: dict[str, Any], dataset: dict[str, Any]) -> SearchState | None:
    """The saved state of the same search, or ``None`` when there is none.

    Raises:
        ValueError: the file is unreadable, of another format, or from another config/dataset.
    """
    path = Path(work_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: corrupt search state ({error}); delete it to restart the search") from None
    version = payload.pop("format_version", None)
    if version != STATE_FORMAT_VERSION:
        raise ValueError(f"{path}: state format_version {version!r}, expected {STATE_FORMAT_VERSION}")
    try:
        state = SearchState(**payload)
        state.trace = _decode_trace(state.trace)
    except TypeError as error:
        raise ValueError(f"{path}: malformed search state ({error})") from None
    for name, expected in (("config", config), ("dataset", dataset)):
        saved = getattr(state, name)
        if saved != expected:
            changed = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
            raise ValueError(
                f"{path}: saved state belongs to a different {name} (differs in {changed}); "
                "use another --work directory or delete the state to restart"
            )
    return state


def clear_state(work_dir: str | os.PathLike) -> None:
    """Remove the state once the outputs are written (a finished search never resumes)."""
    work = Path(work_dir)
    (work / STATE_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # only removed when nothing else lives there
        work.rmdir()

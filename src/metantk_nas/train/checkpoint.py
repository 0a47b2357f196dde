"""The training checkpoint: one dict, written atomically, read back with ``weights_only=True``.

Everything in it is a tensor or a plain Python value (config and genotype as dicts), so loading
never unpickles arbitrary objects. Its layout is the one of ``model.pt`` (``metantk_nas.space.checkpoint``):
the weights under ``"model"``, the cells under ``"genotype"``, the settings under ``"config"``. A checkpoint is refused, with the reason, when it is unreadable,
of another format, or from another run (genotype, config or training data differ).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from metantk_nas.io import atomic_path

FORMAT = "metantk-nas/train-checkpoint"
FORMAT_VERSION = 1
#: Config keys that may change between a run and its resumption (they do not change the result on CPU).
RESUMABLE_CHANGES = frozenset({"device", "compile"})


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` plus the format tag atomically (a kill mid-write leaves the previous file intact)."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, tmp)


def load_checkpoint(path: str | os.PathLike, *, genotype: dict[str, Any], config: dict[str, Any],
                    data_identity: dict[str, Any]) -> dict[str, Any]:
    """Load and check a checkpoint against the run that wants to resume from it.

    Raises:
        ValueError: unreadable/corrupted file, foreign format, or a different genotype, config or dataset.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        raise ValueError(f"{path}: corrupted or unreadable checkpoint ({type(error).__name__}: {error}); "
                         f"delete it to start the run from scratch") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: not a metantk-nas training checkpoint (format {found!r}, expected {FORMAT!r})")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format_version {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    if state.get("genotype") != genotype:
        raise ValueError(f"{path}: checkpoint is of another architecture (genotype {state.get('genotype')} "
                         f"differs from {genotype}); use another --work directory or delete it")
    theirs = {k: v for k, v in state.get("config", {}).items() if k not in RESUMABLE_CHANGES}
    ours = {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}
    if theirs != ours:
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise ValueError(f"{path}: checkpoint is of another configuration (differs in {diff}); "
                         f"use another --work directory or delete it")
    if state.get("data") != data_identity:
        raise ValueError(f"{path}: checkpoint was trained on other data ({state.get('data')} vs {data_identity})")
    return state

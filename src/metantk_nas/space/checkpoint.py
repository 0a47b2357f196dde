"""``model.pt``: a trained final network on disk, saved and rebuilt next to the network itself.

One layout for every file that holds weights (this one and the training checkpoint of
``metantk_nas.train.checkpoint``): the weights (a ``state_dict``) under ``"model"``, the cells under
``"genotype"`` (a dict) and the settings under ``"config"`` — the keys of the official ``ckpt_*.pth`` and of
nanoGPT's checkpoint. Files of format version 1 kept the weights under ``"state_dict"``; they are still read.
Loading uses ``weights_only=True``: nothing but tensors and plain values is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from metantk_nas.io import atomic_path
from metantk_nas.space.final import FinalNetwork
from metantk_nas.space.genotype import Genotype

MODEL_FORMAT = "metantk-nas/model"
MODEL_FORMAT_VERSION = 2
#: Where the weights live in every file that holds them.
WEIGHTS_KEY = "model"
#: The weights key of each format version this code reads.
_WEIGHTS_KEYS = {1: "state_dict", 2: WEIGHTS_KEY}


def save_model(path: str | os.PathLike, model: FinalNetwork, *, config: dict[str, Any], channels: int, cells: int,
               num_classes: int, **metadata: Any) -> None:
    """Write ``model.pt`` atomically: CPU weights, the genotype, the settings and ``metadata``.

    ``metadata`` holds what evaluation needs besides the network (``normalization``, ``image_size``) and the
    record of where it came from (``dataset``, ``provenance``).
    """
    with atomic_path(path) as tmp:
        torch.save({
            "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
            WEIGHTS_KEY: {k: v.cpu() for k, v in model.state_dict().items()},
            "genotype": model.genotype.to_dict(), "config": config,
            "num_classes": num_classes, "channels": channels, "cells": cells, **metadata,
        }, tmp)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[FinalNetwork, dict[str, Any]]:
    """Rebuild the trained network from ``model.pt``; returns (model in eval mode on ``device``, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: corrupted or unreadable model file ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not a metantk-nas model file (expected format {MODEL_FORMAT!r})")
    weights_key = _WEIGHTS_KEYS.get(state.get("format_version"))
    if weights_key is None or weights_key not in state:
        raise ValueError(f"{path}: model file format_version {state.get('format_version')!r} is not readable "
                         f"(known: {sorted(_WEIGHTS_KEYS)})")
    genotype = Genotype.from_dict(state["genotype"])
    model = FinalNetwork(genotype, C=state["channels"], n_cells=state["cells"], num_classes=state["num_classes"])
    try:
        model.load_state_dict(state[weights_key])
    except RuntimeError as error:  # torch lists every mismatching tensor; the first says enough
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        raise ValueError(f"{path}: the weights do not fit the network of its own genotype, {state['channels']} "
                         f"channels and {state['cells']} cells ({detail})") from None
    model.to(device).eval()
    meta = {k: v for k, v in state.items() if k != weights_key}
    return model, meta

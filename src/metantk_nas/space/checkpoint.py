"""``model.pt``: a trained final network on disk, saved and rebuilt next to the network itself.

One layout for every file that holds weights (this one and the training checkpoint of
``metantk_nas.train.checkpoint``): the weights (a ``state_dict``) under ``"model"``, the architecture (the
cells under ``"genotype"`` with ``"channels"`` and ``"cells"``, or a Table 1 baseline's backbone under
``"backbone"``) and the settings under ``"config"`` — the keys of the official ``ckpt_*.pth`` and of
nanoGPT's checkpoint. Files of format version 1 kept the weights under ``"state_dict"``; they are still read.
Loading uses ``weights_only=True``: nothing but tensors and plain values is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import torch.nn as nn

from metantk_nas.io import atomic_path
from metantk_nas.space.backbones import BackboneSpec
from metantk_nas.space.final import FinalNetwork
from metantk_nas.space.genotype import Genotype

#: What a network is built from: searched cells or a named backbone.
Architecture = Genotype | BackboneSpec

MODEL_FORMAT = "metantk-nas/model"
MODEL_FORMAT_VERSION = 2
#: Where the weights live in every file that holds them.
WEIGHTS_KEY = "model"
#: The weights key of each format version this code reads.
_WEIGHTS_KEYS = {1: "state_dict", 2: WEIGHTS_KEY}


def build_network(architecture: Architecture, *, num_classes: int, image_size: int, channels: int | None = None,
                  cells: int | None = None) -> nn.Module:
    """The untrained network of ``architecture`` (cells need ``channels`` and ``cells``)."""
    if isinstance(architecture, Genotype):
        return FinalNetwork(architecture, C=channels, n_cells=cells, num_classes=num_classes)
    return architecture.build(num_classes=num_classes, image_size=image_size)


def architecture_record(architecture: Architecture, channels: int | None = None,
                        cells: int | None = None) -> dict[str, Any]:
    """The keys of ``model.pt`` that rebuild the network (see :func:`build_network`)."""
    if isinstance(architecture, Genotype):
        return {"genotype": architecture.to_dict(), "channels": channels, "cells": cells}
    return {"backbone": architecture.to_dict()}


def save_model(path: str | os.PathLike, model: nn.Module, architecture: Architecture, *, config: dict[str, Any],
               num_classes: int, image_size: int, channels: int | None = None, cells: int | None = None,
               **metadata: Any) -> None:
    """Write ``model.pt`` atomically: CPU weights, the architecture, the settings and ``metadata``.

    ``metadata`` holds what evaluation needs besides the network (``normalization``) and the record of
    where it came from (``dataset``, ``provenance``).
    """
    with atomic_path(path) as tmp:
        torch.save({
            "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
            WEIGHTS_KEY: {k: v.cpu() for k, v in model.state_dict().items()},
            **architecture_record(architecture, channels, cells), "config": config,
            "num_classes": num_classes, "image_size": image_size, **metadata,
        }, tmp)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
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
    if "backbone" in state:
        architecture: Architecture = BackboneSpec.from_dict(state["backbone"])
        described = f"backbone {architecture.label()}"
    else:
        architecture = Genotype.from_dict(state["genotype"])
        described = f"genotype, {state['channels']} channels and {state['cells']} cells"
    model = build_network(architecture, num_classes=state["num_classes"], image_size=state.get("image_size", 0),
                          channels=state.get("channels"), cells=state.get("cells"))
    try:
        model.load_state_dict(state[weights_key])
    except RuntimeError as error:  # torch lists every mismatching tensor; the first says enough
        detail = next((line.strip() for line in str(error).splitlines()[1:] if line.strip()), str(error))
        raise ValueError(f"{path}: the weights do not fit the network of its own {described} ({detail})") from None
    model.to(device).eval()
    meta = {k: v for k, v in state.items() if k != weights_key}
    return model, meta

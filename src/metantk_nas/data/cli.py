"""CLI for metantk_nas.data (filled in by its owner)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach this concern's sub-commands."""

"""The ``metantk-nas`` command line.

Each concern owns a ``cli`` module with ``register(subparsers)``; this file only
collects them. Concern modules import torch lazily inside their handlers so that
``metantk-nas --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metantk_nas import __version__

#: Concern modules that contribute sub-commands, in the order shown by ``--help``.
COMMAND_MODULES = (
    "metantk_nas.data.cli",
    "metantk_nas.space.cli",
    "metantk_nas.kernels.cli",
    "metantk_nas.search.cli",
    "metantk_nas.train.cli",
    "metantk_nas.evaluate.cli",
    "metantk_nas.report.cli",
    "metantk_nas.theory.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every concern's sub-commands attached."""
    parser = argparse.ArgumentParser(
        prog="metantk-nas",
        description="MetaNTK-NAS: training-free architecture search for few-shot learning.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (FileNotFoundError, ValueError, KeyError) as error:
        # Expected user errors: print a clear message, no traceback.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"metantk-nas {args.command}: error: {message}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

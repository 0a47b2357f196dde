"""The ``metantk-nas`` command line.

Each concern owns a ``cli`` module with ``register(subparsers)``; this file only
collects them. Concern modules import torch lazily inside their handlers so that
``metantk-nas --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "metantk_nas.baselines.cli",
    "metantk_nas.report.cli",
    "metantk_nas.theory.cli",
    "metantk_nas.study.cli",
    "metantk_nas.plan.cli",
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
    for command in _commands(parser):
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="threads for torch, OpenMP and BLAS (the workflow passes each rule's threads); "
                                  "default: the libraries' own choice")
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (has a ``func``), sub-sub-commands included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _commands(child) if child._subparsers else [child]
    return found


def error_message(error: BaseException) -> str:
    """One line for an expected failure: the file or key it concerns and what went wrong."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, MemoryError):
        return f"out of memory{f' ({error})' if str(error) else ''}; reduce the sizes or use a larger machine"
    if isinstance(error, OSError) and error.strerror:
        names = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{names}: {error.strerror.lower()}" if names else error.strerror.lower()
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.threads is not None:
            from metantk_nas.threads import limit_threads

            limit_threads(args.threads)
        result = args.func(args)
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of this command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, KeyError, OSError, MemoryError) as error:
        # Expected failures (bad input, unwritable or missing files, too large sizes): one line, no traceback.
        print(f"metantk-nas {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``metantk-nas settings``: every job of the workflow and the settings it runs with, before anything runs.

Reads the config exactly as the Snakefile does (the embedded default only when no ``--configfile``
is given; ``--config`` as Snakemake parses it), resolves each job's command line through the
command's own parser, and prints one table per rule (settings shared by all of its jobs first,
then a row per job for those that differ), or everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

#: The checkout holding this package (its Snakefile and config/), when run from a checkout.
_CHECKOUT = Path(__file__).resolve().parents[3]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``settings``."""
    parser = subparsers.add_parser("settings", help="print every workflow job's resolved settings",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                        help="config files, merged in order (default: config/config.yaml of the workflow)")
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides, parsed as by `snakemake --config`")
    parser.add_argument("--rule", nargs="+", metavar="RULE", help="only these rules (e.g. search train)")
    parser.add_argument("--json", action="store_true", help="print JSON: one record per job")
    parser.add_argument("--workflow", type=Path, default=None,
                        help="workflow folder (holding Snakefile, config/, workflow/); default: this checkout")
    parser.set_defaults(func=_settings)


def _settings(args: argparse.Namespace) -> int:
    from snakemake.cli import parse_config

    from metantk_nas.plan import jobs, load, problems_of, resolved_settings

    workflow = args.workflow or (_CHECKOUT if (_CHECKOUT / "Snakefile").is_file() else Path.cwd())
    config = load(args.configfile, parse_config(args.config), workflow_dir=workflow, require_data=False)
    selected = [job for job in jobs(config) if args.rule is None or job.rule in args.rule]
    records = [{"rule": job.rule, "wildcards": job.wildcards, "argv": list(job.argv),
                "settings": resolved_settings(job)} for job in selected]
    if args.json:
        print(json.dumps(records, indent=2, default=_json_default, allow_nan=False))
    else:
        print(format_tables(records))
    for problem in problems_of(config, require_data=True):
        print(f"note: {problem}")
    return 0


def _json_default(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else str(value)


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_tables(records: list[dict[str, Any]]) -> str:
    """One block per rule: ``key = value`` for settings shared by its jobs, a table for the rest."""
    blocks = []
    for rule in dict.fromkeys(record["rule"] for record in records):
        group = [record for record in records if record["rule"] == rule]
        keys = list(dict.fromkeys(key for record in group for key in record["settings"]))
        values = {key: [_text(record["settings"].get(key)) for record in group] for key in keys}
        wildcards = list(dict.fromkeys(key for record in group for key in record["wildcards"]))
        shared = [key for key in keys if len(set(values[key])) == 1]
        # A setting that only repeats a wildcard of the same name (cells, seed) adds no column.
        varying = [key for key in keys if key not in shared and not (
            key in wildcards and values[key] == [_text(record["wildcards"][key]) for record in group])]
        lines = [f"{rule} ({len(group)} job{'s' if len(group) > 1 else ''})"]
        lines += [f"  {key} = {values[key][0]}" for key in shared]
        if varying:
            header = wildcards + varying
            rows = [[_text(record["wildcards"].get(key, "")) for key in wildcards] +
                    [values[key][i] for key in varying] for i, record in enumerate(group)]
            widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
            for row in [header, ["-" * width for width in widths]] + rows:
                lines.append("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

"""Write one job's resolved settings (``params.settings``) as its settings file, atomically.

A script rather than a ``run:`` block: Snakemake runs every ``run:`` job in a fresh Snakemake process
that re-parses the whole workflow (~3 s per file, ~35 files in the embedded default), a script in a
plain interpreter (~0.3 s).
"""

# `snakemake` (output, params) is injected by the script directive.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from metantk_nas.io import write_json  # noqa: E402

write_json(snakemake.output.settings, snakemake.params.settings)

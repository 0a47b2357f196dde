"""Record the golden outputs of the search presets (run from the repository root, one thread).

``tests/test_search_presets.py`` compares every preset's ``trace.csv`` and genotype with these files byte for
byte. They were recorded before the methods became lists of proxies (commit a0448f6); re-record only for a
change of behaviour that is intended, and say so in the commit.

    OMP_NUM_THREADS=1 .venv/bin/python tests/data/presets/record.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/: the _preset_helpers module

from _preset_helpers import PRESET_RUNS, run_preset  # noqa: E402


def main() -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESET_RUNS:
            out = run_preset(name, Path(tmp) / name, Path(tmp))
            shutil.copyfile(out / "trace.csv", HERE / f"{name}.trace.csv")
            genotype = json.loads((out / "genotype.json").read_text())["string"]
            (HERE / f"{name}.genotype.txt").write_text(genotype + "\n")
            print(name, "recorded")


if __name__ == "__main__":
    main()

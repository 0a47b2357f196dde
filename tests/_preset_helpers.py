"""Small fixed-seed searches of every search preset, recorded in ``tests/data/presets`` (see its ``record.py``).

Each run takes a few seconds: a 2-cell C=2 supernet at 8×8 on a 4-image-per-class glyph store, three ops
alive at the start (two op rounds, then the edge stage), two repeats; the linear-regions run searches all 7 ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent / "data" / "presets"
SMALL: dict[str, Any] = dict(channels=2, cells=2, repeats=2, tasks=1, ways=2, ntk_images=4, resolution=8,
                             region_batch_size=50, region_batches=2, device="cpu", seed=3)
THREE_OPS = ["skip_connect", "sep_conv_3x3", "max_pool_3x3BN"]

#: Name -> search settings on top of SMALL.
PRESET_RUNS: dict[str, dict[str, Any]] = {
    "metantk-nas-maml-official": dict(method="metantk-nas", kernel="maml", ops=THREE_OPS, pairing="official"),
    "metantk-nas-anil-paired": dict(method="metantk-nas", kernel="anil", lam_tau=1.0, reg=1e-5, ops=THREE_OPS,
                                    pairing="paired"),
    "te-nas-official": dict(method="te-nas", ops=THREE_OPS, pairing="official"),
    "te-nas-paired": dict(method="te-nas", ops=THREE_OPS, pairing="paired", edge_origin="fresh"),
    "linear-regions-paired": dict(method="linear-regions", pairing="paired"),
}



def preset_store(root: Path) -> Path:
    """The glyph store of the preset runs (32 px, 4 images per class, seed 0) under ``root``, made on first use."""
    from metantk_nas.data.glyphs import generate_glyphs

    store = root / "glyphs"
    if not store.exists():
        generate_glyphs(store, image_size=32, images_per_class=4, seed=0)
    return store


def search(settings: dict[str, Any], out: Path, store_root: Path) -> Path:
    """Run the search of ``SMALL`` + ``settings`` into ``out`` and return ``out``."""
    from metantk_nas.search.config import SearchConfig
    from metantk_nas.search.engine import run_search

    run_search(SearchConfig.from_dict({**SMALL, **settings}), preset_store(store_root), out,
               work_dir=out.parent / f".work-{out.name}", progress=False)
    return out


def run_preset(name: str, out: Path, store_root: Path) -> Path:
    """Run the preset search ``name`` into ``out`` and return ``out``."""
    return search(PRESET_RUNS[name], out, store_root)

"""The proxy validity study's settings (the workflow's ``study`` block): which architectures, which proxies.

The study's architectures are ordinary runs of the workflow, so they are searched (drawn), trained and
evaluated by the same rules as the tables' cells: ``random_cells`` runs of method ``random`` (seeds 0..N−1,
a random cell each), with ``zoo`` every cell of the zoo (method ``zoo``, seed = its index in
``metantk-nas arch list``), and the searched runs of the study's (dataset, cells) experiment. Each is scored
by every proxy (``metantk-nas study score``, at the experiment's search settings) and the summary ranks the
proxies against the accuracy the runs reach (``metantk-nas study summarise``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.options import Options, option
from metantk_nas.proxies.registry import PROXIES


@dataclass(frozen=True)
class StudyConfig(Options):
    """The ``study`` block of the workflow config."""

    section: ClassVar[str] = "study"

    enabled: bool = option(False, "part of the default target (make run); `snakemake study` (make study) runs it "
                           "either way")
    dataset: str | None = option(None, "dataset (a key of datasets) of the study; null = the ablation dataset")
    cells: int | None = option(None, "cells of the study's networks (its runs are those of the (dataset, cells) "
                               "experiment); null = the cells of the dataset's first experiment", choices=(5, 8))
    random_cells: int = option(20, "random cells (method random, seeds 0..N-1), trained and evaluated", minimum=0)
    zoo: bool = option(True, "every zoo cell too (method zoo; the published MetaNAS and MetaNTK-NAS cells)")
    seeds: int = option(3, "proxy seeds per architecture (fresh weights, tasks and images each)", minimum=1)
    proxies: tuple[str, ...] = option(tuple(PROXIES), "proxies measured and compared", choices=PROXIES)
    resamples: int = option(2000, "bootstrap resamples of every interval", minimum=100)
    seed: int = option(0, "seed of the proxies' draws (the same for every architecture) and of the bootstrap",
                       minimum=0)

    def check(self) -> None:
        if not self.proxies or len(set(self.proxies)) != len(self.proxies):
            raise ValueError(f"key 'proxies' must be distinct names from {list(PROXIES)}, got {list(self.proxies)!r}")

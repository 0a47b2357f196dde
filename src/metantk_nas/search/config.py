"""The search configuration: one frozen dataclass, faithful to the official code by default.

Each documented paper-vs-code difference is a named option (see ``search/README.md``): the
defaults reproduce the released code (reference §0.1, §2, §3, §4); the alternatives follow the
paper or remove a source of noise. ``from_dict`` refuses unknown keys and bad values so that a
typo in a YAML file can never silently fall back to a default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.device import check_device
from metantk_nas.options import Options, option
from metantk_nas.proxies.registry import PROXIES
from metantk_nas.search.methods import CUSTOM, METANTK, METHODS, get_method
from metantk_nas.space.primitives import PRIMITIVES

#: Per-sample-gradient backends of ``metantk_nas.kernels``.
BACKENDS = ("auto", "loop", "opacus", "func", "gram")


@dataclass(frozen=True)
class SearchConfig(Options):
    """Every setting of one search run (defaults = the official ``script_mini_5cell.sh``)."""

    section: ClassVar[str] = "search"

    method: str = option("metantk-nas", "architecture source (search/methods.py)", choices=METHODS, workflow=False)
    kernel: str = option("maml", "MetaNTK inner-loop kernel: maml (K = Θ; the paper's 5 cells) or anil "
                         "(head-only kernel; 8 cells)", choices=("maml", "anil"))
    lam_tau: float = option(math.inf, "λτ, inner learning rate × time (Appendix E); inf drops the exponential",
                            exclusive_minimum=0)
    reg: float = option(1e-3, "ρ added to K_SS inside the pseudo-inverse (Appendix E)", minimum=0)
    cells: int = option(5, "cells of the supernet (5 or 8 in the paper)", minimum=2, workflow=False)
    channels: int = option(48, "initial channels C of the supernet", minimum=1, workflow=False)
    seed: int = option(0, "the one seed every random choice is derived from", minimum=0, workflow=False)
    ops: tuple[str, ...] = option(PRIMITIVES, "ops alive at the start (a subset searches a smaller space)",
                                  choices=PRIMITIVES, workflow=False)
    genotype: str | None = option(None, "zoo name or genotype file of a given-cell method (metanas: its "
                                  "published cell by default)", workflow=False)
    proxies: tuple[str, ...] | None = option(None, "the proxies of method custom, ranked each in its own direction "
                                             "and rank-summed (metantk: the MetaNTK of kernel); refused for the "
                                             "other methods, which are presets", choices=(METANTK, *PROXIES))
    repeats: int = option(3, "repeats of every ΔC/ΔR measurement", minimum=1)
    tasks: int = option(3, "tasks per MetaNTK batch (official dartsbs)", minimum=1)
    ways: int = option(5, "classes per search task", minimum=2)
    shots: int = option(1, "support images per class in a search task", minimum=1)
    queries: int = option(1, "query images per class in a search task", minimum=1)
    ntk_images: int = option(30, "images of the TE-NAS NTK batch (30 = 3 tasks × 10 images)", minimum=2)
    resolution: int = option(32, "image side during the search (the official code searches at 32×32)", minimum=8)
    delta: str = option("relative", "condition-number change: relative (c0 - c)/c0 rounded per repeat (code) or "
                        "absolute c0 - c (paper)", choices=("relative", "absolute"))
    precision: int = option(3, "decimals of the per-repeat rounding of relative changes", minimum=0)
    init: str = option("default", "network init: PyTorch default (code) or kaiming normal (paper)",
                       choices=("default", "kaiming"))
    output: str = option("sum", "kernel of the summed logits (code) or per-logit kernels (paper)",
                         choices=("sum", "logits"))
    pairing: str = option("official", "official: fresh tasks and heads per network; paired: one batch per round "
                          "shared by origin and candidates", choices=("official", "paired"))
    edge_origin: str = option("stale", "MetaNTK origin of the edge stage: stale (code quirk) or fresh",
                              choices=("stale", "fresh"))
    region_batches: int = option(3, "linear-region batches per measurement", minimum=1)
    region_batch_size: int = option(1000, "1×3×3 inputs per linear-region batch", minimum=2)
    backend: str = option("auto", "per-sample-gradient backend (auto = gram)", choices=BACKENDS)
    batch_candidates: int = option(0, "kernel evaluations (origin or candidate masks) scored in one batched "
                                   "supernet pass: 0 = automatic (CPU: the groups that fit one micro-batch, at "
                                   "most 64; GPU: from the free memory), 1 = one at a time; the values equal "
                                   "one at a time up to float rounding (gram backend; the other backends score "
                                   "one at a time)", minimum=0, workflow=False)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)

    def check(self) -> None:
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise ValueError(f"key 'ops' must be distinct names from {list(PRIMITIVES)}, got {list(self.ops)!r}")
        given = [m for m, other in METHODS.items() if other.source == "genotype"]
        required = [m for m in given if METHODS[m].genotype is None]  # no default cell: it must be given
        if (self.method in required and self.genotype is None) or (self.method not in given and self.genotype):
            raise ValueError(f"key 'genotype' is required for methods {required}, allowed for the given-cell methods "
                             f"{given} and nowhere else (method={self.method!r}, genotype={self.genotype!r})")
        custom = self.method == CUSTOM
        if custom != (self.proxies is not None) or (custom and not self.proxies):
            raise ValueError("key 'proxies' is required for method 'custom' (a list of proxies) and refused for the "
                             f"preset methods (method={self.method!r}, proxies={self.proxies!r})")
        names = self.proxy_names
        kernels = [name for name in names if PROXIES[name].network == "supernet"]
        if len(set(names)) != len(names) or len(kernels) > 1:
            raise ValueError(f"key 'proxies': each proxy at most once and at most one condition number "
                             f"({[n for n, p in PROXIES.items() if p.network == 'supernet']}), got {list(names)!r}")
        check_device(self.device)

    @property
    def proxy_names(self) -> tuple[str, ...]:
        """The registry names of the proxies this search ranks by, in rank-sum order (``metantk`` resolved)."""
        names = self.proxies if self.method == CUSTOM else get_method(self.method).proxies
        return tuple(f"{METANTK}-{self.kernel}" if name == METANTK else name for name in names or ())

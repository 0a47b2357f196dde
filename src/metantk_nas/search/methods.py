"""Search methods as configurations of the one engine (paper Tables 1–2, reference §5).

A method only decides *what* ΔC measures (MetaNTK, NTK or nothing) or whether the pruning
search runs at all; the pruning, ranking, tracing and resuming are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from metantk_nas.search.config import METHODS, SearchConfig


@dataclass(frozen=True)
class MethodSpec:
    """How one method obtains its genotype."""

    name: str
    condition: str | None  # "metantk" | "ntk" | None (ΔC ≡ 0); meaningful only when ``prunes``
    prunes: bool  # True: run the pruning search; False: the genotype is given (random / fixed)
    summary: str


_SPECS: dict[str, MethodSpec] = {
    "metantk-nas": MethodSpec("metantk-nas", "metantk", True,
                              "MetaNTK condition number (MAML or ANIL kernel) + linear regions (the paper)"),
    "te-nas": MethodSpec("te-nas", "ntk", True,
                         "NTK condition number of 30 augmented train images + linear regions (Table 2)"),
    "linear-regions": MethodSpec("linear-regions", None, True, "linear regions only, ΔC ≡ 0 (Table 2)"),
    "random": MethodSpec("random", None, False, "a uniformly random cell from the seed (Table 2)"),
    "fixed": MethodSpec("fixed", None, False, "a given zoo genotype, no search (MetaNAS retrained rows)"),
}


def get_method(name: str) -> MethodSpec:
    """The spec of a method name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown search method {name!r}; expected one of {list(METHODS)}") from None


#: Appendix E kernel settings per (dataset family, cells): (kernel, λτ, ρ); identical to the four
#: released scripts (reference §0.2).
APPENDIX_E: dict[tuple[str, int], tuple[str, float, float]] = {
    ("mini", 5): ("maml", math.inf, 1e-3),
    ("mini", 8): ("anil", 1.0, 1e-5),
    ("tiered", 5): ("maml", math.inf, 1e-3),
    ("tiered", 8): ("anil", math.inf, 1e-3),
}


def paper_settings(family: str, cells: int) -> dict[str, object]:
    """``{"kernel", "lam_tau", "reg"}`` that the paper used for ``family`` (mini | tiered) and ``cells``."""
    try:
        kernel, lam_tau, reg = APPENDIX_E[(family, cells)]
    except KeyError:
        raise ValueError(f"no Appendix E setting for preset {family!r} with {cells} cells; "
                         f"known: {sorted(APPENDIX_E)}") from None
    return {"kernel": kernel, "lam_tau": lam_tau, "reg": reg}


def method_config(method: str, **options: object) -> SearchConfig:
    """A validated :class:`SearchConfig` for ``method`` with ``options`` overriding the defaults."""
    get_method(method)
    return SearchConfig.from_dict({"method": method, **options})

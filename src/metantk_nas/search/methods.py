"""The methods: every architecture source of the tables, one registry for engine, workflow, tables and figures.

A method only decides *where* its cell comes from (the pruning search, a random draw, or a given genotype)
and, for a search, *which proxies* rank the pruning candidates: a list of names of the proxy registry
(``metantk_nas.proxies``), each ranked in its own direction and the ranks summed (the official rank sum).
The paper's searches are presets of that list; ``custom`` takes its list from the ``proxies`` setting. The
pruning, ranking, tracing and resuming are shared. The workflow's ``methods`` keys, the schema's enum, the
row labels and order of Tables 1 and 2 and the ablation figure all read :data:`METHODS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One architecture source.

    Attributes:
        name: the key in configs, CLIs, paths and tables.
        label: the paper's row label.
        source: ``search`` (the pruning search), ``random`` (a cell drawn from the seed) or ``genotype``
            (a given cell, trained here).
        proxies: the proxies a search ranks candidates by, in rank-sum order (:data:`METANTK`: the MetaNTK of
            the ``kernel`` setting); empty for ``custom`` (the ``proxies`` setting) and the non-search sources.
        tables: the paper tables this method is a row of.
        genotype: the default cell of a ``genotype`` method (None: it must be given).
        summary: one line for the documentation.
    """

    name: str
    label: str
    source: str
    proxies: tuple[str, ...]
    tables: tuple[str, ...]
    genotype: str | None
    summary: str

    @property
    def prunes(self) -> bool:
        """Whether the pruning search runs (and needs a dataset)."""
        return self.source == "search"


#: The preset proxy that stands for the MetaNTK of the ``kernel`` setting (``metantk-maml`` or ``metantk-anil``).
METANTK = "metantk"

#: The method whose proxies are the ``proxies`` setting.
CUSTOM = "custom"
#: The method whose cell is the zoo's cell number ``seed`` (``space.list_zoo()`` order; the proxy study).
ZOO = "zoo"

#: Every method, in the tables' row order.
METHODS: dict[str, Method] = {method.name: method for method in (
    Method("metanas", "MetaNAS(retrained)", "genotype", (), ("table1",), "metanas/in-v2",
           "the published MetaNAS cell (metanas_genotype), trained here (Table 1)"),
    Method("metantk-nas", "MetaNTK-NAS", "search", (METANTK, "linear-regions"), ("table1", "table2"), None,
           "MetaNTK condition number (MAML or ANIL kernel) + linear regions (the paper)"),
    Method("te-nas", "TE-NAS", "search", ("ntk", "linear-regions"), ("table2",), None,
           "NTK condition number of 30 augmented train images + linear regions (Table 2)"),
    Method("linear-regions", "Linear Region", "search", ("linear-regions",), ("table2",), None,
           "linear regions only, ΔC ≡ 0 (Table 2)"),
    Method("random", "Random Cell", "random", (), ("table2",), None,
           "a uniformly random cell from the seed (Table 2)"),
    Method(CUSTOM, "Custom proxies", "search", (), ("table2",), None,
           "the proxies of the proxies setting, rank-summed (e.g. [naswot, linear-regions])"),
    Method(ZOO, "Zoo cell", "genotype", (), (), None,
           "the zoo's cell number seed (metantk-nas arch list order), trained here (the proxy study)"),
    Method("fixed", "Given cell", "genotype", (), (), None,
           "a given genotype (--genotype NAME|FILE), no search"),
)}


def get_method(name: str) -> Method:
    """The method of a name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown search method {name!r}; expected one of {list(METHODS)}") from None


#: The paper's tables that the report rebuilds (a method lists those it is a row of in ``Method.tables``).
TABLES: tuple[str, ...] = ("table1", "table2")


def table_methods(table: str) -> tuple[str, ...]:
    """The methods that are rows of ``table`` (``table1`` or ``table2``), in row order."""
    return tuple(name for name, method in METHODS.items() if table in method.tables)


#: Methods a workflow experiment may list (every method that is a row of a paper table).
WORKFLOW_METHODS = tuple(name for name, method in METHODS.items() if method.tables)
#: Methods of the workflow's runs: the experiments' and the proxy study's zoo cells.
RUN_METHODS = (*WORKFLOW_METHODS, ZOO)

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

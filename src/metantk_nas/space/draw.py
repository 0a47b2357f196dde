"""Cell diagrams in the style of Paper Fig. 2, drawn with matplotlib only (no graphviz binary).

Input nodes ``c_{k-2}``, ``c_{k-1}`` on the left, intermediate nodes 0..2 in the middle, the
output ``c_k`` (concatenation of the intermediate nodes) on the right; every genotype edge is an
arrow labelled with its operation.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from metantk_nas.io import save_figure
from metantk_nas.space.genotype import Cell, Genotype

_POSITIONS = {0: (0.0, 1.3), 1: (0.0, -1.3), 2: (3.0, 0.0), 3: (5.6, -0.9), 4: (8.2, 0.9), "out": (10.8, 0.0)}
#: Edge curvature: edges from c_{k-2} bulge upwards and from c_{k-1} downwards, more for farther
#: targets, so that they pass around the intermediate nodes in between.
_INPUT_RAD = {2: 0.22, 3: 0.3, 4: 0.45}
_INNER_RAD = 0.12


def _rad(source: int, target: int | str) -> float:
    if source == 0:
        return -_INPUT_RAD[target]
    if source == 1:
        return _INPUT_RAD[target]
    return _INNER_RAD
_COLORS = {"input": "#a6d96a", "node": "#abd9e9", "out": "#fee08b"}


def _node_label(node: int | str) -> str:
    if node == "out":
        return r"$c_{k}$"
    if node == 0:
        return r"$c_{k-2}$"
    if node == 1:
        return r"$c_{k-1}$"
    return str(node - 2)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], label: str | None, rad: float) -> None:
    """An op edge (solid, labelled) or, with ``label=None``, a concatenation edge into the output (dashed)."""
    style = {"color": "#444444", "lw": 1.2} if label else {"color": "#999999", "lw": 1.0, "linestyle": "--"}
    ax.add_patch(FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                 mutation_scale=14, shrinkA=18, shrinkB=18, **style))
    if label:
        (x1, y1), (x2, y2) = start, end
        # midpoint of matplotlib's arc3 quadratic Bézier: chord midpoint + rad/2 · (dy, −dx)
        x = (x1 + x2) / 2 + rad * (y2 - y1) / 2
        y = (y1 + y2) / 2 - rad * (x2 - x1) / 2
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})


def _cell_figure(cell: Cell, title: str) -> Figure:
    figure = Figure(figsize=(9.0, 4.8))
    ax = figure.add_axes((0.0, 0.0, 1.0, 0.92))
    for node in range(2, 5):
        for op, source in cell[node - 2]:
            _arrow(ax, _POSITIONS[source], _POSITIONS[node], op, _rad(source, node))
        _arrow(ax, _POSITIONS[node], _POSITIONS["out"], None, _INNER_RAD)
    for node, (x, y) in _POSITIONS.items():
        kind = "out" if node == "out" else ("input" if node in (0, 1) else "node")
        ax.text(x, y, _node_label(node), ha="center", va="center", fontsize=12,
                bbox={"boxstyle": "round,pad=0.5", "fc": _COLORS[kind], "ec": "black"})
    ax.set_xlim(-1.0, 11.8)
    ax.set_ylim(-3.2, 3.2)
    ax.set_title(title)
    ax.axis("off")
    return figure


def draw_genotype(genotype: Genotype, out_dir: str | Path, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``{stem}_normal`` and ``{stem}_reduce`` diagrams as SVG and PNG (at ``dpi``); returns the 4 paths."""
    out_dir = Path(out_dir)
    paths = []
    for kind, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        figure = _cell_figure(cell, f"{stem}: {'normal' if kind == 'normal' else 'reduction'} cell")
        paths += save_figure(figure, out_dir, f"{stem}_{kind}", dpi=dpi, tight=False)
    return paths

"""The search supernet (§1.2–1.4): every cell holds all 7 ops on each of its 9 edges.

Which ops are alive is a pair of (9, 7) bool masks, one per cell type, shared by all cells of
that type. :meth:`SearchSupernet.set_masks` only swaps the masks, so one instance evaluates any
number of candidate masks; ops that are removed are never executed (their gradients stay
``None``), an alive op on an edge with ``k`` alive ops gets weight exactly ``1/k``, and an edge
with no alive op contributes exactly zero.

Candidate batching (:meth:`SearchSupernet.set_group_masks`): one forward can evaluate a batch grouped by
candidate, consecutive blocks of samples each with its own masks. Each op then carries a per-sample weight,
``1/k`` for the samples of a group where it is alive on that edge (``k`` alive ops there) and exactly ``0``
where it is not; an op dead in every group of the batch is not executed at all. A zero weight makes the
op's output, and every gradient inside the op, exactly zero for those samples, so each group's outputs and
per-sample gradients are those of a separate forward with that group's masks (up to float rounding from
the batch size).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from metantk_nas.space.blocks import FactorizedReduce, ReLUConvBN, make_norm
from metantk_nas.space.ops import create_op
from metantk_nas.space.primitives import EDGES, MASK_SHAPE, PRIMITIVES, STEPS
from metantk_nas.space.skeleton import cell_plan

AliveOps = tuple[tuple[int, ...], ...]
#: One contiguous piece of a grouped batch: (group index, first sample within the group, samples).
Piece = tuple[int, int, int]


@dataclass(frozen=True)
class WeightedOps:
    """The ops of one edge in a batch grouped by candidate: ``(op index, weight)`` in op order.

    A weight is a float when every sample gives the op the same weight, else an (n, 1, 1, 1) tensor
    (``1/k`` of the sample's group, or 0 where the op is dead in it).
    """

    terms: tuple[tuple[int, float | torch.Tensor], ...]


def layer_plan(n_cells: int) -> list[tuple[int, bool]]:
    """Per-cell (channel multiplier, is_reduction) of the official search skeleton.

    Depths L = 3N+2 (5, 8, 11, ...) take :func:`~metantk_nas.space.skeleton.cell_plan`: N normal cells at
    C, a reduction to 2C, N at 2C, a reduction to 4C, N at 4C. Depths below 5 are the official truncation
    of the 5-cell plan (the 2-cell linear-region network: a normal cell then a reduction cell).
    """
    if n_cells < 1 or (n_cells >= 5 and (n_cells - 2) % 3):
        raise ValueError(f"n_cells must be 1..4 or 3N+2 (5, 8, 11, ...), got {n_cells}")
    return cell_plan(max(n_cells, 5))[:n_cells]


def all_alive_mask() -> torch.Tensor:
    """A (9, 7) mask with every op alive (the state before pruning)."""
    return torch.ones(MASK_SHAPE, dtype=torch.bool)


def _check_mask(name: str, mask: torch.Tensor | Sequence) -> torch.Tensor:
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} mask must have dtype bool (True = alive), got {mask.dtype}")
    if tuple(mask.shape) != MASK_SHAPE:
        raise ValueError(f"{name} mask must have shape {MASK_SHAPE} (edges × ops), got {tuple(mask.shape)}")
    return mask.detach().to("cpu").clone()


def _alive_ops(mask: torch.Tensor) -> AliveOps:
    return tuple(tuple(i for i, alive in enumerate(row) if alive) for row in mask.tolist())


class MixedEdge(nn.Module):
    """All 7 ops of one edge; ``forward(x, alive)`` averages the alive ones (uniform 1/k weights), or takes
    per-sample weights (:class:`WeightedOps`, a batch grouped by candidate)."""

    def __init__(self, C: int, stride: int, norm: str) -> None:
        super().__init__()
        self.stride = stride
        self.ops = nn.ModuleList(create_op(name, C, stride, affine=True, norm=norm) for name in PRIMITIVES)
        self.C = C

    def forward(self, x: torch.Tensor, alive: Sequence[int] | WeightedOps) -> torch.Tensor:
        if isinstance(alive, WeightedOps):
            terms = alive.terms
        else:
            terms = tuple((index, 1.0 / len(alive)) for index in alive)
        if not terms:
            height = -(-x.shape[2] // self.stride)
            width = -(-x.shape[3] // self.stride)
            return x.new_zeros((x.shape[0], self.C, height, width))
        index, weight = terms[0]
        out = weight * self.ops[index](x)
        for index, weight in terms[1:]:
            out = out + weight * self.ops[index](x)
        return out


class SearchCell(nn.Module):
    """A supernet cell: preprocess both inputs, 9 mixed edges, output = concat of nodes 2, 3, 4."""

    def __init__(self, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool, norm: str) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_pp, C, affine=True, norm=norm)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=True, norm=norm)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=True, norm=norm)
        self.edges = nn.ModuleList(
            MixedEdge(C, 2 if reduction and source < 2 else 1, norm) for _, source in EDGES
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor,
                alive: Sequence[Sequence[int] | WeightedOps]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(2, 2 + STEPS):
            total = None
            for index, (target, source) in enumerate(EDGES):
                if target == node:
                    out = self.edges[index](states[source], alive[index])
                    total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[2:], dim=1)

    def alive_modules(self, alive: AliveOps) -> Iterator[tuple[str, nn.Module]]:
        """(name, module) of the preprocessors and the alive ops only."""
        yield "preprocess0", self.preprocess0
        yield "preprocess1", self.preprocess1
        for index, ops in enumerate(alive):
            for op in ops:
                yield f"edges.{index}.ops.{op}", self.edges[index].ops[op]


class SearchSupernet(nn.Module):
    """The official ``NASNetworkDARTS`` supernet.

    Same interface as :class:`~metantk_nas.space.final.FinalNetwork` (timm's): ``forward_features(x)``
    (pooled features), ``forward_head(features)`` (logits), ``forward(x)`` = both (logits); the official
    ``forward`` returned ``(features, logits)``, which kernel code asks for explicitly instead.

    Args:
        C: channels of the first cell (and of the stem).
        n_cells: depth L (5 or 8 in the paper; 2 for the linear-region network).
        num_classes: width of the linear classifier.
        norm: ``"group"`` (MetaNTK/NTK networks) or ``"batch"`` (linear-region network).
        use_stem: conv3×3+norm stem; without it the raw input feeds both cell inputs.
        in_channels: input image channels.
    """

    def __init__(self, C: int = 48, n_cells: int = 5, num_classes: int = 64, norm: str = "group",
                 use_stem: bool = True, in_channels: int = 3) -> None:
        super().__init__()
        self.norm_type = norm
        if use_stem:
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, C, 3, padding=1, bias=False), make_norm(C, norm)
            )
            C_pp = C_p = C
        else:
            self.stem = nn.Identity()
            C_pp = C_p = in_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for multiplier, reduction in layer_plan(n_cells):
            C_cell = C * multiplier
            self.cells.append(SearchCell(C_pp, C_p, C_cell, reduction, reduction_prev, norm))
            C_pp, C_p = C_p, STEPS * C_cell
            reduction_prev = reduction
        self.num_features = C_p
        self.lastact = nn.Sequential(make_norm(C_p, norm), nn.ReLU(inplace=True))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.register_buffer("mask_normal", all_alive_mask())
        self.register_buffer("mask_reduce", all_alive_mask())
        self._alive = {False: _alive_ops(self.mask_normal), True: _alive_ops(self.mask_reduce)}
        self._group_alive: list[dict[bool, AliveOps]] = []

    def set_masks(self, normal: torch.Tensor, reduce: torch.Tensor) -> None:
        """Switch to new (9, 7) bool masks (True = alive) without rebuilding any module."""
        normal = _check_mask("normal", normal)
        reduce = _check_mask("reduce", reduce)
        self.mask_normal.copy_(normal)
        self.mask_reduce.copy_(reduce)
        self._alive = {False: _alive_ops(normal), True: _alive_ops(reduce)}

    def set_group_masks(self, masks: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Masks of the groups of a batch grouped by candidate: group ``g`` uses ``masks[g]`` = (normal, reduce).

        Used by ``forward_features(x, groups=...)`` only; the plain forward keeps :meth:`set_masks`' masks.
        """
        self._group_alive = [
            {False: _alive_ops(_check_mask("normal", normal)), True: _alive_ops(_check_mask("reduce", reduce))}
            for normal, reduce in masks
        ]

    def _group_plan(self, pieces: Sequence[Piece], device: torch.device) -> dict[bool, list]:
        """Per cell type and edge: the alive tuple shared by every piece, or the ops' per-sample weights."""
        plan: dict[bool, list] = {}
        counts = torch.tensor([count for _, _, count in pieces], device=device)
        for reduction in (False, True):
            edges: list = []
            for edge in range(len(EDGES)):
                alive = [self._group_alive[group][reduction][edge] for group, _, _ in pieces]
                if all(ops == alive[0] for ops in alive):
                    edges.append(alive[0])
                    continue
                terms = []
                for op in sorted(set().union(*alive)):
                    weights = [1.0 / len(ops) if op in ops else 0.0 for ops in alive]
                    if all(w == weights[0] for w in weights):
                        terms.append((op, weights[0]))
                    else:
                        per_sample = torch.tensor(weights, device=device).repeat_interleave(counts)
                        terms.append((op, per_sample.view(-1, 1, 1, 1)))
                edges.append(WeightedOps(tuple(terms)))
            plan[reduction] = edges
        return plan

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # keep the op lists in sync with loaded masks
        super()._load_from_state_dict(*args, **kwargs)
        self._alive = {False: _alive_ops(self.mask_normal), True: _alive_ops(self.mask_reduce)}

    @property
    def masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the current (normal, reduce) masks."""
        return self.mask_normal.detach().cpu().clone(), self.mask_reduce.detach().cpu().clone()

    def forward_features(self, x: torch.Tensor, groups: Sequence[Piece] | None = None) -> torch.Tensor:
        """lastact norm + ReLU → global average pool → flatten.

        ``groups``: ``x`` is a batch grouped by candidate, consecutive pieces ``(group, first, count)`` whose
        samples use the masks of ``group`` (:meth:`set_group_masks`); the counts sum to ``len(x)``.
        """
        alive = self._alive
        if groups is not None:
            if sum(count for _, _, count in groups) != x.shape[0]:
                raise ValueError(f"groups cover {sum(c for _, _, c in groups)} samples, the batch has {x.shape[0]}")
            if any(not 0 <= group < len(self._group_alive) for group, _, _ in groups):
                raise ValueError(f"groups name a group without masks ({len(self._group_alive)} set)")
            alive = self._group_plan(groups, x.device)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, alive[cell.reduction])
        return torch.flatten(self.global_pool(self.lastact(s1)), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The network's own classifier on pooled features (the TE-NAS NTK output)."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: ``forward_head(forward_features(x))`` (timm's contract, as :class:`FinalNetwork`)."""
        return self.forward_head(self.forward_features(x))

    def named_alive_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Parameters that the current masks actually use (stem, preprocessors, alive ops, head)."""
        yield from (("stem." + n, p) for n, p in self.stem.named_parameters())
        for index, cell in enumerate(self.cells):
            for prefix, module in cell.alive_modules(self._alive[cell.reduction]):
                yield from ((f"cells.{index}.{prefix}.{n}", p) for n, p in module.named_parameters())
        yield from (("lastact." + n, p) for n, p in self.lastact.named_parameters())
        yield from (("classifier." + n, p) for n, p in self.classifier.named_parameters())


def build_thin_network(num_classes: int) -> SearchSupernet:
    """The linear-region network (§1.4b): C=1, 2 cells, no stem, BatchNorm, 1-channel input as s0 and s1."""
    return SearchSupernet(C=1, n_cells=2, num_classes=num_classes, norm="batch", use_stem=False, in_channels=1)

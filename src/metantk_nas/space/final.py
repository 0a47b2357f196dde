"""The network trained and evaluated from a genotype (§1.5, official ``AugmentCNN``).

Differences from the supernet are deliberate and official: one op per (node, input) pair, drop
path on every non-Identity op, BatchNorm, and global pooling directly on the last cell output
(no final norm + ReLU). The official dummy ``alpha_*`` parameters are not reproduced.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from metantk_nas.space.blocks import DropPath, FactorizedReduce, Identity, ReLUConvBN, make_norm
from metantk_nas.space.genotype import Cell, Genotype
from metantk_nas.space.ops import create_op
from metantk_nas.space.primitives import CONCAT
from metantk_nas.space.skeleton import cell_plan


class FinalCell(nn.Module):
    """A discrete cell: each intermediate node sums its two genotype ops; output = concat of nodes 2, 3, 4."""

    def __init__(self, cell: Cell, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (FactorizedReduce(C_pp, C) if reduction_prev
                                       else ReLUConvBN(C_pp, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        self.inputs = tuple(tuple(source for _, source in node) for node in cell)
        self.nodes = nn.ModuleList()
        for node in cell:
            row = nn.ModuleList()
            for name, source in node:
                op = create_op(name, C, 2 if reduction and source < 2 else 1, affine=True, norm="batch")
                row.append(op if isinstance(op, Identity) else nn.Sequential(op, DropPath()))
            self.nodes.append(row)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for row, sources in zip(self.nodes, self.inputs):
            states.append(row[0](states[sources[0]]) + row[1](states[sources[1]]))
        return torch.cat([states[i] for i in CONCAT], dim=1)


class FinalNetwork(nn.Module):
    """Stem conv3×3+BN → L cells (reductions at ⌊L/3⌋, ⌊2L/3⌋) → GAP → Linear.

    Args:
        genotype: the cells to stack.
        C: channels of the stem and the first cell (576-d features at C=48).
        n_cells: depth L.
        num_classes: classifier width (64 mini, 351 tiered).
        drop_path_prob: initial drop-path probability (settable attribute).
        in_channels: input image channels.
    """

    def __init__(self, genotype: Genotype, C: int = 48, n_cells: int = 5, num_classes: int = 64,
                 drop_path_prob: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        self.genotype = genotype
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), make_norm(C, "batch"))
        self.cells = nn.ModuleList()
        C_pp = C_p = C
        reduction_prev = False
        for multiplier, reduction in cell_plan(n_cells):
            C_cell = C * multiplier
            self.cells.append(FinalCell(genotype.cell(reduction), C_pp, C_p, C_cell, reduction, reduction_prev))
            C_pp, C_p = C_p, len(CONCAT) * C_cell
            reduction_prev = reduction
        self.num_features = C_p
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.drop_path_prob = drop_path_prob

    @property
    def drop_path_prob(self) -> float:
        """Probability of dropping each non-Identity op's output per sample (training mode only)."""
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, value: float) -> None:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {value}")
        self._drop_path_prob = float(value)
        for module in self.modules():
            if isinstance(module, DropPath):
                module.p = float(value)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled last-cell output (no final norm/ReLU), flattened."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return torch.flatten(self.global_pool(s1), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The trained classifier on pooled features."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: ``forward_head(forward_features(x))`` (timm's contract, as the search supernet)."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh ``Linear(num_features, num_classes)`` on the same device/dtype."""
        weight = self.classifier.weight
        self.classifier = nn.Linear(self.num_features, num_classes).to(device=weight.device, dtype=weight.dtype)


def count_parameters(model: nn.Module | Iterable[nn.Parameter]) -> int:
    """Total number of scalars in a model's parameters (or in an iterable of parameters)."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    return sum(p.numel() for p in params)

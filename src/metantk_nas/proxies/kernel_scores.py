"""The kernel proxies' scoring functions: the condition numbers of ``metantk_nas.kernels`` as plain numbers."""

from __future__ import annotations

import torch
from torch import nn

from metantk_nas.kernels import metantk_condition, ntk_condition


def metantk(model: nn.Module, query: torch.Tensor, support: torch.Tensor, head: nn.Module, *, algorithm: str,
            **options: object) -> float:
    """The MetaNTK condition number of one batch of tasks: ``kernels.metantk_condition``'s value, with its
    defaults (λτ = ∞, ρ = 1e-3, ...) for the options not given."""
    return float(metantk_condition(model, query, support, head=head, algorithm=algorithm, **options).value)


def ntk(model: nn.Module, images: torch.Tensor, **options: object) -> float:
    """The NTK condition number of the model's own classifier: ``kernels.ntk_condition``'s value."""
    return float(ntk_condition(model, images, **options).value)

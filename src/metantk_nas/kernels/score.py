"""One-call proxies for the search: MetaNTK and NTK condition numbers of a network (official §2.3–2.7)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from metantk_nas.kernels.condition import DEGENERATE_CONDITION, ConditionNumber, condition_number
from metantk_nas.kernels._gram import GroupedLinear
from metantk_nas.kernels.metantk import TaskLayout, meta_ntk
from metantk_nas.kernels.ntk import NTKResult, empirical_ntk, grouped_empirical_ntk


def make_head(feature_dim: int, n_way: int, generator: torch.Generator, device: torch.device | str = "cpu") -> nn.Linear:
    """A fresh ``Linear(feature_dim, n_way)`` with PyTorch's default init drawn from ``generator``.

    PyTorch's default is U(±1/√fan_in) for weight and bias (kaiming_uniform with a=√5); drawing it from an
    explicit generator makes the official "fresh random 5-way head" reproducible from a recorded seed.
    """
    if feature_dim < 1 or n_way < 1:
        raise ValueError(f"feature_dim and n_way must be >= 1, got {feature_dim}, {n_way}")
    head = nn.Linear(feature_dim, n_way)
    bound = 1.0 / math.sqrt(feature_dim)
    with torch.no_grad():
        head.weight.copy_(torch.empty(n_way, feature_dim).uniform_(-bound, bound, generator=generator))
        head.bias.copy_(torch.empty(n_way).uniform_(-bound, bound, generator=generator))
    return head.to(device)


def metantk_condition(
    model: nn.Module,
    query: torch.Tensor,
    support: torch.Tensor,
    *,
    head: nn.Module,
    algorithm: str = "maml",
    lam_tau: float = math.inf,
    reg: float = 1e-3,
    output: str = "sum",
    backend: str = "auto",
) -> ConditionNumber:
    """Condition number of the MetaNTK of a batch of tasks (official §2.1–2.5).

    Args:
        model: the search network (``forward_features`` feeds ``head``).
        query: (n_tasks, n_query, C, H, W) query images.
        support: (n_tasks, n_support, C, H, W) support images.
        head: the fresh random head (see :func:`make_head`).
        algorithm: ``"maml"`` (K = Θ) or ``"anil"`` (K = head-weight kernel).
        lam_tau, reg: inner-loop time λτ (∞ or ≥ 1000 drops the exponential) and regulariser ρ.
        output: ``"sum"`` (official scalar) or ``"logits"`` (paper).
        backend: per-sample gradient backend of :func:`~metantk_nas.kernels.ntk.empirical_ntk`.

    Returns:
        The condition number; :data:`DEGENERATE_CONDITION` when Θ equals the head-only kernel (zero features).
    """
    images = _task_images(query, support)
    result = empirical_ntk(model, images, head=head, output=output, backend=backend)
    return _metantk_value(result, query, support, algorithm=algorithm, lam_tau=lam_tau, reg=reg)


def _task_images(query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    if query.dim() < 3 or support.dim() < 3 or query.shape[0] != support.shape[0]:
        raise ValueError(
            f"query and support must be (n_tasks, n, ...) with equal n_tasks, got {tuple(query.shape)} and {tuple(support.shape)}"
        )
    return torch.cat([query.flatten(0, 1), support.flatten(0, 1)])  # official X = concat(query, support)


def _metantk_value(result: NTKResult, query: torch.Tensor, support: torch.Tensor, *, algorithm: str,
                   lam_tau: float, reg: float) -> ConditionNumber:
    """MetaNTK assembly (float64) and condition number of one batch of tasks' kernels."""
    if result.last_layer is not None and np.allclose(result.theta, result.last_layer):
        return ConditionNumber(DEGENERATE_CONDITION, np.linalg.eigh(result.theta)[0])
    layout = TaskLayout(query.shape[0], query.shape[1], support.shape[1], result.n_outputs)
    phi = meta_ntk(result.theta, result.last_layer, layout, lam_tau=lam_tau, reg=reg, algorithm=algorithm)
    return condition_number(phi)


def metantk_conditions(
    model: nn.Module,
    queries: list[torch.Tensor],
    supports: list[torch.Tensor],
    *,
    heads: list[nn.Linear],
    algorithm: str = "maml",
    lam_tau: float = math.inf,
    reg: float = 1e-3,
    output: str = "sum",
    pack: int | None = None,
) -> list[ConditionNumber]:
    """:func:`metantk_condition` of several candidates in one batched pass (candidate batching, ``gram`` backend).

    Candidate ``g`` has its tasks ``queries[g]``, ``supports[g]`` (equal shapes for all), its head ``heads[g]``
    and the model's group masks ``g`` (:meth:`~metantk_nas.space.SearchSupernet.set_group_masks`). Each
    value equals :func:`metantk_condition` of that candidate alone (up to float rounding); only the diagonal
    group blocks of the kernel are formed, and the assembly and eigenvalues are per candidate, as there.
    """
    if not (len(queries) == len(supports) == len(heads) >= 1):
        raise ValueError(f"need as many queries, supports and heads (>= 1), got "
                         f"{len(queries)}, {len(supports)}, {len(heads)}")
    images = torch.cat([_task_images(q, s) for q, s in zip(queries, supports, strict=True)])
    results = grouped_empirical_ntk(model, images, len(heads), head=GroupedLinear(heads).to(images.device),
                                    output=output, pack=pack)
    return [_metantk_value(result, q, s, algorithm=algorithm, lam_tau=lam_tau, reg=reg)
            for result, q, s in zip(results, queries, supports, strict=True)]


def ntk_condition(model: nn.Module, images: torch.Tensor, *, output: str = "sum", backend: str = "auto") -> ConditionNumber:
    """Condition number of the NTK of the model's own classifier (TE-NAS baseline, official §2.7)."""
    return condition_number(empirical_ntk(model, images, output=output, backend=backend).theta)


def ntk_conditions(model: nn.Module, images: list[torch.Tensor], *, output: str = "sum",
                   pack: int | None = None) -> list[ConditionNumber]:
    """:func:`ntk_condition` of several candidates in one batched pass (the model's group masks ``g`` for
    ``images[g]``; ``gram`` backend); each value equals the one-at-a-time value up to float rounding."""
    if not images:
        raise ValueError("need at least one group of images")
    results = grouped_empirical_ntk(model, torch.cat(list(images)), len(images), output=output, pack=pack)
    return [condition_number(result.theta) for result in results]

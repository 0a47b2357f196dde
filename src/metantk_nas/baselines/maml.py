"""MAML (Finn et al. 2017) and ANIL (Raghu et al. 2020) meta-learning with ``torch.func``.

MAML learns an initialisation θ from which a few SGD steps on a task's support set (the *inner loop*) give
low loss on its query set; the meta-gradient differentiates through those steps (second order) or, in
first-order MAML (FOMAML), takes the query gradient at the adapted parameters as the gradient at θ.
ANIL ("almost no inner loop") showed that adapting only the head in the inner loop matches MAML: the body's
features are reused, not rapidly changed. Both are Table 1 baselines of MetaNTK-NAS.

Settings of the original papers (miniImageNet, Conv4):

==========================  ===========================================================
setting                     MAML (Finn et al. 2017); ANIL (Raghu et al. 2020) the same
==========================  ===========================================================
backbone                    Conv4, 32 filters, batch norm with batch statistics
inner loop                  SGD, lr 0.01; 5 steps at training, 10 at test
adapted parameters          MAML: all; ANIL: the head only
meta-batch                  4 tasks (1-shot), 2 tasks (5-shot)
outer optimiser             Adam, lr 1e-3
queries                     15 per class
meta-iterations             60 000
==========================  ===========================================================

Functional design: parameters are a ``dict[name, Tensor]`` passed through
``torch.func.functional_call(model, {**params, **buffers}, (x,))``, so adapted parameters are ordinary graph
nodes and the model's own ``nn.Parameter`` s (θ) receive the meta-gradient on ``.backward()``. For ANIL the
inner loop computes the body features once, ``model.forward_features`` with the body parameters, and then
runs only ``model.head`` functionally: the body is not adapted, so this is exact, and each step costs a
linear layer instead of a full network (the second-order graph still reaches the body through the features).
Buffers (running statistics, step counters) are the model's own tensors and may be updated in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

HEAD_PREFIX = "head."
ADAPT_MODES = ("all", "head")


def adapted_names(model: nn.Module, adapt: str) -> list[str]:
    """Names of the parameters the inner loop updates: ``"all"`` (MAML) or ``"head"`` (ANIL: ``head.*``)."""
    if adapt not in ADAPT_MODES:
        raise ValueError(f"adapt must be one of {ADAPT_MODES}, got {adapt!r}")
    names = [n for n, _ in model.named_parameters() if adapt == "all" or n.startswith(HEAD_PREFIX)]
    if not names:
        raise ValueError(f"model has no parameters to adapt with adapt={adapt!r} (ANIL needs a `head` module)")
    return names


class _Method(nn.Module):
    """Calls one method of a wrapped module, so ``functional_call`` can run e.g. ``forward_features``
    (the wrapped module's parameter names gain the prefix ``module.``)."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return getattr(self.module, self.method)(*args)


def _state(model: nn.Module, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**params, **dict(model.named_buffers())}


def _features(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``model.forward_features(x)`` with ``params`` in place of the model's parameters."""
    state = {"module." + k: v for k, v in _state(model, params).items()}
    return functional_call(_Method(model, "forward_features"), state, (x,))


def _head(model: nn.Module, params: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """``model.head(features)`` with the ``head.*`` entries of ``params``."""
    state = {k[len(HEAD_PREFIX):]: v for k, v in _state(model, params).items() if k.startswith(HEAD_PREFIX)}
    return functional_call(model.head, state, (features,))


def _is_head_only(names: Sequence[str]) -> bool:
    return all(n.startswith(HEAD_PREFIX) for n in names)


def inner_loop(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, steps: int,
               lr: float, names: Sequence[str], create_graph: bool) -> dict[str, torch.Tensor]:
    """``steps`` SGD steps of lr ``lr`` on the support cross-entropy, updating only ``names``.

    The entries of ``names`` must require grad (or hang off tensors that do). ``create_graph=True`` keeps the
    graph of the gradients (second-order MAML); with ``False`` each step's gradient is a constant, so the
    adapted parameters depend on the initial ones through the identity only (FOMAML). If every name starts
    with ``head.`` (ANIL), the body features are computed once and only the head is run per step.
    Returns a new dict: updated entries are new tensors, all others the very tensors passed in.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"parameters to adapt are not in params: {missing}")
    params = dict(params)
    features = _features(model, params, x) if _is_head_only(names) and steps > 0 else None
    if features is not None and not create_graph:
        features = features.detach()  # first order: inner gradients are constants, the body graph is not needed
    for _ in range(steps):
        logits = (_head(model, params, features) if features is not None
                  else functional_call(model, _state(model, params), (x,)))
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=create_graph)
        for n, g in zip(names, grads):
            params[n] = params[n] - lr * g
    return params


def _logits(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, head_only: bool) -> torch.Tensor:
    if head_only:
        return _head(model, params, _features(model, params, x))
    return functional_call(model, _state(model, params), (x,))


def _check_tasks(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                 query_y: torch.Tensor | None) -> None:
    if support_x.shape[:2] != support_y.shape or support_y.dim() != 2:
        raise ValueError(f"support_x (T, n, ...) and support_y (T, n) disagree: {tuple(support_x.shape)}, "
                         f"{tuple(support_y.shape)}")
    if query_x.shape[0] != support_x.shape[0]:
        raise ValueError(f"support and query have different task counts: {support_x.shape[0]}, {query_x.shape[0]}")
    if query_y is not None and query_x.shape[:2] != query_y.shape:
        raise ValueError(f"query_x (T, m, ...) and query_y (T, m) disagree: {tuple(query_x.shape)}, "
                         f"{tuple(query_y.shape)}")


def meta_loss(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
              query_y: torch.Tensor, *, steps: int, lr: float, adapt: str,
              first_order: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MAML/ANIL objective of a meta-batch: mean query cross-entropy after adapting to each support set.

    Inputs carry a leading task dimension: ``(T, n, C, H, W)`` images and ``(T, n)`` labels. Each task starts
    from the model's current parameters; ``.backward()`` on the returned loss puts the meta-gradient
    (second order, or FOMAML's with ``first_order=True``) into the model's ``.grad``. Call it in train mode:
    MAML normalises with batch statistics (Conv4 keeps none). Returns ``(mean loss, mean query accuracy)``,
    the accuracy a detached 0-d tensor.
    """
    _check_tasks(support_x, support_y, query_x, query_y)
    names = adapted_names(model, adapt)
    head_only = _is_head_only(names)
    theta = dict(model.named_parameters())
    losses, accuracies = [], []
    for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y):
        adapted = inner_loop(model, theta, sx, sy, steps, lr, names, create_graph=not first_order)
        logits = _logits(model, adapted, qx, head_only)
        losses.append(F.cross_entropy(logits, qy))
        accuracies.append((logits.detach().argmax(dim=-1) == qy).float().mean())
    return torch.stack(losses).mean(), torch.stack(accuracies).mean()


def adapt_and_predict(model: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      *, steps: int, lr: float, adapt: str) -> torch.Tensor:
    """Predicted query labels of one task after ``steps`` inner-loop steps (MAML tests with 10).

    ``support_x`` is ``(n, C, H, W)``, ``query_x`` ``(m, C, H, W)``. The model is not changed (its
    parameters are detached copies here) and no graph is kept; its train/eval mode is left to the caller
    (MAML evaluates with batch statistics, which Conv4 always uses).
    """
    names = adapted_names(model, adapt)
    with torch.enable_grad():
        params = {n: p.detach().requires_grad_(n in names) for n, p in model.named_parameters()}
        adapted = inner_loop(model, params, support_x, support_y, steps, lr, names, create_graph=False)
    with torch.no_grad():
        return _logits(model, adapted, query_x, _is_head_only(names)).argmax(dim=-1)

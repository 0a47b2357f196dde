"""The standard zero-cost proxies, re-implemented from their papers' definitions.

Each takes a network and a batch ``x`` (N, C, H, W) (and labels ``y`` where a loss is needed) and returns
a float, higher meaning a better architecture. None changes the model: the forward passes that could
(train mode, gradients) run through :func:`torch.func.functional_call` on copies of the parameters and
buffers, so gradients, BatchNorm's running statistics and SynFlow's float64 absolute values land on the
copies; hooks are removed and each module's train/eval mode is restored afterwards. Only ``nn.ReLU``
modules can be seen by NASWOT: a functional ``F.relu`` has no module to hook.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metantk_nas.kernels._gram import NORM_TYPES
from metantk_nas.space import count_parameters

#: The layers whose weights the gradient proxies score and whose MACs FLOPs counts (as Abdelfattah et al.'s
#: ``get_layer_metric_array``).
WEIGHTED_LAYERS = (nn.Conv2d, nn.Linear)

#: The regulariser k of the Jacobian-covariance score (Mellor et al. 2020, arXiv v1).
JACOB_COV_K = 1e-5

_Hook = Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], torch.Tensor | None]


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Every module of ``model`` in train (or eval) mode inside; each module's own mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


@contextlib.contextmanager
def _hooked(model: nn.Module, types: tuple[type[nn.Module], ...], hook: _Hook) -> Iterator[None]:
    """``hook`` as a forward hook of every module of ``types`` inside (once per module, however often it runs)."""
    handles = [module.register_forward_hook(hook) for module in model.modules() if isinstance(module, types)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _copies(model: nn.Module, convert: Callable[[torch.Tensor], torch.Tensor] = torch.clone) -> dict[str, torch.Tensor]:
    """Stand-ins for every parameter and buffer of ``model`` (for ``functional_call``): ``convert`` of each
    floating-point one (default: a copy), a copy of the others; none of them shares memory or autograd
    history with the model's own tensors."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {name: convert(t.detach()) if t.is_floating_point() else t.detach().clone() for name, t in tensors.items()}


def _weight_names(model: nn.Module) -> list[str]:
    """The weight of every conv and linear layer, each once, named as ``named_parameters`` names it."""
    names = {id(p): name for name, p in model.named_parameters()}
    return list(dict.fromkeys(names[id(m.weight)] for m in model.modules() if isinstance(m, WEIGHTED_LAYERS)))


def _loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W, ∂L/∂W) of every conv and linear weight, L = mean cross-entropy of ``model(x)`` on ``y`` in train
    mode (Abdelfattah et al. score a network copy in train mode); an unused weight gets a zero gradient."""
    state = _copies(model)
    weights = [state[name].requires_grad_() for name in _weight_names(model)]
    with _mode(model, True), torch.enable_grad():
        loss = F.cross_entropy(functional_call(model, state, (x,)), y)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w.detach(), torch.zeros_like(w) if g is None else g) for w, g in zip(weights, grads, strict=True)]


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """log|det K_H| of the binary ReLU codes of ``x`` (Mellor et al., "Neural Architecture Search without
    Training", ICML 2021).

    c_i is the 0/1 code (activation > 0) of every unit of every ``nn.ReLU`` for input i; K_H[i, j] =
    N_A − hamming(c_i, c_j), N_A the number of units, i.e. the number of units on which two inputs agree,
    accumulated per ReLU as c cᵀ + (1 − c)(1 − c)ᵀ in float64 (exact integers). The forward runs in train
    mode under no_grad, as the reference scores a freshly built network; the determinant is
    ``torch.linalg.slogdet`` in float64 (−inf when K_H is singular, e.g. two inputs with one code).
    """
    kernel = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64, device=x.device)
    units = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal units
        codes = (output > 0).flatten(1).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)
        units += codes.shape[1]

    with _hooked(model, (nn.ReLU,), hook), _mode(model, True), torch.no_grad():
        functional_call(model, _copies(model), (x,))
    if not units:
        raise ValueError("the model applies no nn.ReLU module: NASWOT has no activation code to compare")
    return float(torch.linalg.slogdet(kernel).logabsdet)


def _bypass(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    """A forward hook that makes its module the identity (its input replaces its output)."""
    return args[0]


def synflow(model: nn.Module, x: torch.Tensor) -> float:
    """Σ_W Σ |W ⊙ ∂R/∂W| over conv and linear weights (Tanaka et al., "Pruning neural networks without any
    data by iteratively conserving synaptic flow", NeurIPS 2020; as a proxy: Abdelfattah et al., "Zero-Cost
    Proxies for Lightweight NAS", ICLR 2021).

    Every parameter and floating-point buffer is replaced by its absolute value (sign linearisation) in
    float64, and R = Σ model(1), the summed output of one all-ones input of ``x``'s shape (only the shape of
    ``x`` is used). Normalisation layers (``NORM_TYPES``: BatchNorm, GroupNorm, LayerNorm, ...) are bypassed
    as identities: Abdelfattah et al. compute ``synflow`` on a copy of the network built without BatchNorm,
    since batch statistics of a single constant input erase its magnitude (a constant map normalises to
    zero; BatchNorm1d refuses a batch of one) and running statistics would score what the network has seen,
    not its architecture. The rest runs in eval mode (deterministic dropout; without normalisation layers
    train and eval mode give the same flow).
    """
    state = _copies(model, lambda t: t.abs().double())
    weights = [state[name].requires_grad_() for name in _weight_names(model)]
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    with _hooked(model, NORM_TYPES, _bypass), _mode(model, False), torch.enable_grad():
        flow = functional_call(model, state, (ones,)).sum()
        grads = torch.autograd.grad(flow, weights, allow_unused=True)
    return float(sum((w.detach() * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ_W Σ |W ⊙ ∂L/∂W| over conv and linear weights, L the cross-entropy of ``model(x)`` on ``y`` (Lee et
    al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019; the saliency
    |∂L/∂c| of a weight mask c at c = 1 is |W ⊙ ∂L/∂W|; summed as in Abdelfattah et al. 2021)."""
    return float(sum((w * g).abs().sum() for w, g in _loss_gradients(model, x, y)))


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ_W ‖∂L/∂W‖₂ (Frobenius norm per conv or linear weight tensor), L the cross-entropy of ``model(x)``
    on ``y`` (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021)."""
    return float(sum(torch.linalg.vector_norm(g) for _, g in _loss_gradients(model, x, y)))


def jacob_cov(model: nn.Module, x: torch.Tensor) -> float:
    """−Σ_i [log(λ_i + k) + 1/(λ_i + k)], k = 1e-5, over the eigenvalues λ of the correlation matrix of the
    input Jacobians (Mellor et al., "Neural Architecture Search without Training", arXiv v1 2020, as
    ``jacob_cov`` in Abdelfattah et al. 2021).

    Row i is ∂(Σ_k f_k(x_i))/∂x_i flattened, taken as the reference does: the gradient of the summed outputs
    of the whole batch with respect to ``x`` in train mode (the per-sample Jacobian unless layers mix the
    samples, as BatchNorm on batch statistics does). ``np.corrcoef`` of the rows; the eigenvalues of that
    symmetric matrix are real (``eigvalsh``, float64; the reference's ``eig`` gives the same). A constant
    row has no correlation: the score is NaN, as the reference's (its ``eig`` fails on the NaN matrix).
    """
    inputs = x.detach().clone().requires_grad_()
    with _mode(model, True), torch.enable_grad():
        (jacobian,) = torch.autograd.grad(functional_call(model, _copies(model), (inputs,)).sum(), inputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(jacobian.flatten(1).double().cpu().numpy())
    if not np.all(np.isfinite(correlation)):
        return math.nan
    eigenvalues = np.linalg.eigvalsh(correlation)
    return float(-np.sum(np.log(eigenvalues + JACOB_COV_K) + 1.0 / (eigenvalues + JACOB_COV_K)))


def params(model: nn.Module, x: torch.Tensor | None = None) -> float:
    """Number of trainable parameters (``requires_grad``; shared ones once); of a masked search supernet, those its
    masks use (``named_alive_parameters``: a pruning candidate is the supernet without one op). ``x`` is not
    used (the proxies' common signature)."""
    alive = getattr(model, "named_alive_parameters", None)
    parameters = [p for _, p in alive()] if alive is not None else model.parameters()
    return float(count_parameters(p for p in parameters if p.requires_grad))


def flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates (MACs) of the conv and linear layers for one input, ``x[:1]``.

    Counted by forward hooks (a layer run twice counts twice) in eval mode under no_grad: each output element
    of a ``Conv2d`` costs (C_in / groups)·k_h·k_w MACs, of a ``Linear`` in_features MACs (one row of the
    weight: ``weight[0].numel()`` for both); biases, normalisation, activations and pooling are not counted.
    """
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.weight[0].numel()

    with _hooked(model, WEIGHTED_LAYERS, hook), _mode(model, False), torch.no_grad():
        model(x[:1])
    return float(total)

"""Empirical neural tangent kernels from per-sample gradients (Paper §4, Eq. 4; official §2.3).

The kernel of a network with outputs g(x) over a parameter set θ is

    Θ(x, x') = Σ_{p ∈ θ} ⟨∂g(x)/∂p, ∂g(x')/∂p⟩,

computed here from the per-sample gradients of one batch. Two output conventions:

* ``"sum"`` — the official scalar g(x) = Σ_c z_c(x) (sum of the logits); the kernel is n×n.
* ``"logits"`` — the paper's k-dimensional output; the kernel is kn×kn with rows in
  **sample-major** order: row ``n * k + c`` is logit ``c`` of sample ``n``.

Four interchangeable ways to get the per-sample gradients (they agree to float32 rounding):

>>> result = empirical_ntk(model, images, head=head, backend="func")  # doctest: +SKIP
>>> result.theta.shape, result.last_layer.shape                           # doctest: +SKIP
((30, 30), (30, 30))

Each parameter's (layer's) Gram is computed in float32 (measured-here.md: float64 per-sample gradients
are 2–3× slower and change the condition number by ≤1.4e-4 relative) and summed into a float64 kernel,
so the order of the many layer sums does not add float32 rounding; the MetaNTK algebra is float64.
"""

from __future__ import annotations

import enum
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metantk_nas.kernels._gram import NORM_TYPES, GroupedLinear, Piece, gram_kernel, grouped_gram_kernel, plan_chunks

OUTPUTS = ("sum", "logits")


class NtkBackend(str, enum.Enum):
    """How the per-sample gradients are computed.

    LOOP: one forward and backward per sample (per sample and logit in ``"logits"`` mode). The reference:
        obviously exact, the lowest memory, and the slowest for small images.
    OPACUS: Opacus 1.6 ``GradSampleModule`` hooks, the paper's method. One batched forward and backward
        per output (the forward is redone per logit in ``"logits"`` mode), in the same memory layout as the
        other backends (:func:`_layout_safe_grad_sample_module`). Raises on layers Opacus cannot
        handle in batch (BatchNorm in training mode).
    FUNC: ``torch.func`` ``vmap`` over ``grad`` (``jacrev`` for logits) of a ``functional_call``, in chunks of
        ``chunk_size`` samples to bound the memory of the vectorised backward.
    GRAM: one batched forward and backward per micro-batch (k backwards of one retained graph for
        ``"logits"``) with the parameters' ``requires_grad`` off; hooks turn each Conv2d/Linear layer's input
        and grad_output into its per-sample gradients (rows) and the kernel is the sum of the layers' Grams
        (see ``kernels/_gram.py``). With a single micro-batch only one layer's rows exist at a time. Needs
        samples that do not interact (no batch statistics) and supports Conv2d/Linear weights and biases
        only; anything else is a ValueError.
    AUTO: the fastest for the device (see :data:`DEFAULT_BACKEND` and ``benchmarks/ntk.py``).
    """

    AUTO = "auto"
    LOOP = "loop"
    OPACUS = "opacus"
    FUNC = "func"
    GRAM = "gram"


#: Backend used when ``backend="auto"``: ``gram``. In ``benchmarks/ntk.py`` (paper-size supernet, "sum", one
#: thread of a 2-core CPU, warm, each backend's time over an adjacent warm forward+backward of the same batch)
#: it took 1.08× that floor at 32×32 (30 images, micro-batches of 10) against opacus 2.79×, and 0.89× at
#: 84×84 (10 images, micro-batches of 2) against opacus 2.24×: ≥ 2.5× faster than opacus at both sizes. In one
#: batch at 32×32: 1.22×, loop 1.54×, func 1.96×, opacus 2.98×, peak memory 1.05× the floor's (func 2.9×,
#: opacus 1.8×). It agrees with ``loop`` to ≤ 3e-6 relative in both output modes at 32×32. Its work is the
#: floor's (the backward without weight gradients, plus per-layer contractions of the same FLOPs and a small
#: Gram), so nothing ties the ranking to the CPU. Models it cannot handle (kernel parameters in layers other
#: than Conv2d/Linear) get a ValueError that names the layer and points to ``func``.
DEFAULT_BACKEND = NtkBackend.GRAM

#: ``func`` chunks (and ``gram`` micro-batches on a GPU) hold at most this many input pixels (10 at 84×84,
#: all 30 at 32×32). ``func``: unchunked vmap at 84×84 was 2.7× the forward+backward floor on the CPU, chunks
#: of 10 were 1.2×. ``gram``: one pass over 30 images at 84×84 needs ~27 GiB of activations (more than a
#: 24 GiB machine has); micro-batches of 10 bound that to ~9 GiB and give the same kernel.
DEFAULT_CHUNK_PIXELS = 10 * 84 * 84

#: ``gram`` on a CPU: micro-batches of at most this many input pixels (2 images at 84×84, 10 + 10 + 10 of 30
#: at 32×32). Each layer's tensors of a small micro-batch stay in the CPU caches (one thread, time over the
#: forward+backward floor of the whole batch): at 84×84 (10 images) "sum" took 0.89× against 1.16× in one
#: batch, "logits" 68 s against 77 s at 5.5 instead of 13 GiB; at 32×32 "sum" 1.08× against 1.25×. Same
#: kernel; the price is keeping every layer's rows (R × P floats) until the last micro-batch.
GRAM_CPU_CHUNK_PIXELS = 2 * 84 * 84

#: In "logits" mode (k times the rows to keep) images smaller than this stay one batch on a CPU: at 32×32
#: micro-batches of 10 took 57 s at 10 GiB against 45 s at 6.8 GiB in one batch.
GRAM_CPU_MIN_LOGITS_IMAGE_PIXELS = 64 * 64

#: Grouped batches on a CPU (candidate batching): whole groups are packed into one micro-batch up to this
#: many input pixels, the budget of one micro-batch of one group (at the CI miniature, 10 images of 8×8 per
#: group: 22 groups, 6× faster per candidate than one at a time; ``benchmarks/candidate_batching.py``).
GRAM_CPU_PACK_PIXELS = GRAM_CPU_CHUNK_PIXELS


@dataclass(frozen=True)
class NTKResult:
    """Empirical kernels of one batch (float64).

    Attributes:
        theta: Θ over the selected parameters, shape (R, R) with R = n ("sum") or n·k ("logits").
        last_layer: 𝒦, the kernel of the head weight alone (ANIL's inner-loop kernel); ``None`` without a head.
        n_outputs: outputs per sample in the kernel rows (1 for "sum", k for "logits").
        param_count: number of scalar parameters the kernel sums over.
    """

    theta: np.ndarray
    last_layer: np.ndarray | None
    n_outputs: int
    param_count: int


class _Outputs(nn.Module):
    """The network as the kernel sees it: a fresh head on ``model.forward_features`` (MetaNTK), or the
    model's own ``forward_head`` (NTK). Both networks of :mod:`metantk_nas.space` have the two methods."""

    def __init__(self, model: nn.Module, head: nn.Module | None):
        super().__init__()
        missing = [name for name in ("forward_features", "forward_head") if not callable(getattr(model, name, None))]
        if missing:
            raise ValueError(f"model must have forward_features(x) and forward_head(features); "
                             f"{type(model).__name__} lacks {', '.join(missing)}")
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor, groups: Sequence[Piece] | None = None) -> torch.Tensor:
        if groups is None:
            features = self.model.forward_features(x)
            return self.head(features) if self.head is not None else self.model.forward_head(features)
        features = self.model.forward_features(x, groups=groups)  # each piece with its group's masks
        if self.head is None:
            return self.model.forward_head(features)
        return self.head(features, groups) if isinstance(self.head, GroupedLinear) else self.head(features)


def _reduce(logits: torch.Tensor, output: str) -> torch.Tensor:
    """(B, k) logits → the kernel outputs: (B,) for "sum", (B, k) for "logits"."""
    return logits.sum(-1) if output == "sum" else logits


def _reachable_leaves(root: torch.Tensor) -> set[int]:
    """ids of the leaf tensors that ``root`` depends on (walk of the autograd graph, no backward)."""
    seen, found, stack = set(), set(), [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


def default_parameters(net: nn.Module, probe: torch.Tensor) -> list[tuple[str, nn.Parameter]]:
    """The official parameter set (§2.3 item 5): ``.weight`` of every non-normalisation module on the
    executed path to the output, found by one forward of ``probe`` (removed ops do not run)."""
    with torch.enable_grad():
        reachable = _reachable_leaves(net(probe).sum())
    selected = []
    for module_name, module in net.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, NORM_TYPES) or not isinstance(weight, nn.Parameter):
            continue
        if id(weight) in reachable:
            selected.append((f"{module_name}.weight" if module_name else "weight", weight))
    return selected


def _check_batch_independent(net: nn.Module) -> None:
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise ValueError(
                f"module {name!r} is a BatchNorm in training mode: per-sample gradients are undefined when "
                "samples share batch statistics; use GroupNorm (norm='group') or eval mode"
            )


# Per-sample gradient backends. Each fills rows[name] (R × numel float32) for every selected parameter.

_ParamRows = dict[str, torch.Tensor]  # parameter name -> (R, numel) per-sample gradient rows


def _loop_rows(net: _Outputs, x: torch.Tensor, named: list[tuple[str, nn.Parameter]], output: str,
               rows: _ParamRows, chunk_size: int | None) -> None:
    params = [p for _, p in named]
    for n in range(x.shape[0]):
        out = _reduce(net(x[n : n + 1]), output).reshape(-1)
        for c in range(out.shape[0]):
            grads = torch.autograd.grad(out[c], params, retain_graph=c + 1 < out.shape[0], allow_unused=True)
            for (name, p), g in zip(named, grads, strict=True):
                rows[name][n * out.shape[0] + c] = 0.0 if g is None else g.reshape(-1)


def _func_rows(net: _Outputs, x: torch.Tensor, named: list[tuple[str, nn.Parameter]], output: str,
               rows: _ParamRows, chunk_size: int | None) -> None:
    from torch.func import functional_call, grad, jacrev, vmap

    params = {name: p.detach() for name, p in named}
    frozen = {name: t.detach() for name, t in [*net.named_parameters(), *net.named_buffers()] if name not in params}

    def single(p: dict[str, torch.Tensor], sample: torch.Tensor) -> torch.Tensor:
        logits = functional_call(net, ({**frozen, **p},), (sample.unsqueeze(0),))
        return _reduce(logits, output).squeeze(0)

    per_sample = vmap(grad(single) if output == "sum" else jacrev(single), in_dims=(None, 0))
    step = chunk_size or x.shape[0]
    for start in range(0, x.shape[0], step):
        chunk = per_sample(params, x[start : start + step])
        for name, g in chunk.items():
            per_row = g[0].numel() // rows[name].shape[1]  # k for "logits", 1 for "sum"
            block = g.reshape(-1, rows[name].shape[1])  # (chunk·k, numel), sample-major
            rows[name][start * per_row : start * per_row + block.shape[0]] = block


@functools.cache
def _layout_safe_grad_sample_module() -> type:
    """Opacus' ``GradSampleModule`` with its Conv2d grad sampler fed NCHW tensors.

    Opacus 1.6's conv grad sampler returns wrong per-sample gradients for channels_last activations
    (checked here against the loop backend). Making the captured activations and grad_outputs contiguous
    inside the sampler fixes that while the network itself still runs channels_last, so this backend
    sees the same forward pass (and float32 rounding) as the others. The override lives in a subclass's
    own sampler table (built once); Opacus' global table is untouched.
    """
    from opacus import GradSampleModule

    conv_sampler = GradSampleModule.GRAD_SAMPLERS[nn.Conv2d]

    def contiguous_conv_sampler(layer: nn.Conv2d, activations: list[torch.Tensor], backprops: torch.Tensor):
        return conv_sampler(layer, [a.contiguous() for a in activations], backprops.contiguous())

    return type("LayoutSafeGradSampleModule", (GradSampleModule,),
                {"GRAD_SAMPLERS": {**GradSampleModule.GRAD_SAMPLERS, nn.Conv2d: contiguous_conv_sampler}})


def _opacus_rows(net: _Outputs, x: torch.Tensor, named: list[tuple[str, nn.Parameter]], output: str,
                 rows: _ParamRows, chunk_size: int | None) -> None:
    selected = {id(p) for _, p in named}
    saved = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in saved:
        p.requires_grad_(id(p) in selected)
    gsm = _layout_safe_grad_sample_module()(net, batch_first=True, loss_reduction="sum", strict=False)
    try:
        n_out = 1
        c = 0
        while c < n_out:
            out = _reduce(gsm(x), output)
            n_out = 1 if out.dim() == 1 else out.shape[1]
            target = out if out.dim() == 1 else out[:, c]
            with warnings.catch_warnings():  # inputs never require grad: Opacus' full-backward-hook notice is moot
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                target.sum().backward()
            for name, p in named:
                sample = getattr(p, "grad_sample", None)
                block = torch.zeros_like(rows[name][c::n_out]) if sample is None else sample.reshape(x.shape[0], -1)
                rows[name][c::n_out] = block
            gsm.zero_grad(set_to_none=True)
            c += 1
    finally:
        gsm._close()
        for p, flag in saved:
            p.requires_grad_(flag)
            p.grad = None


#: backend(net, x, params, output, chunk_size) -> (theta, last_layer, param_count, n_outputs), float64 kernels
_KernelFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None, int, int]]


def _rows_kernel(fill: Callable[..., None]) -> _KernelFn:
    """A backend that materialises the rows of every selected parameter, then sums their Grams."""

    def kernel(net: _Outputs, x: torch.Tensor, params: Sequence[nn.Parameter] | None, output: str,
               chunk_size: int) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
        with torch.no_grad():
            n_out = 1 if output == "sum" else net(x[:1]).shape[-1]
        names = {id(p): name for name, p in net.named_parameters()}
        if params is None:
            named = default_parameters(net, x[:1])
        else:
            named = []
            for p in params:
                if id(p) not in names:
                    raise ValueError("params must be parameters of model or head")
                named.append((names[id(p)], p))
        if not named:
            raise ValueError("no parameters reach the output: nothing to differentiate")
        head_name = "head.weight" if net.head is not None and any(n == "head.weight" for n, _ in named) else None
        n_rows = x.shape[0] * n_out
        theta = torch.zeros(n_rows, n_rows, dtype=torch.float64, device=x.device)
        last = torch.zeros_like(theta) if head_name is not None else None
        rows = {name: torch.empty(n_rows, p.numel(), dtype=torch.float32, device=x.device) for name, p in named}
        fill(net, x, named, output, rows, chunk_size)
        for name, block in rows.items():
            gram = block @ block.T
            theta += gram
            if name == head_name:
                last += gram
        return theta, last, sum(p.numel() for _, p in named), n_out

    return kernel


def _gram(net: _Outputs, x: torch.Tensor, params: Sequence[nn.Parameter] | None, output: str,
          chunk_size: int) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
    return gram_kernel(net, x, params, output, net.head, chunk_size)


_BACKENDS: dict[NtkBackend, _KernelFn] = {
    NtkBackend.LOOP: _rows_kernel(_loop_rows),
    NtkBackend.OPACUS: _rows_kernel(_opacus_rows),
    NtkBackend.FUNC: _rows_kernel(_func_rows),
    NtkBackend.GRAM: _gram,
}


def _default_chunk(x: torch.Tensor, backend: NtkBackend, output: str) -> int:
    """Samples per chunk/micro-batch, balanced so the last one is not a straggler (30 → 10 + 10 + 10)."""
    n, pixels = x.shape[0], max(math.prod(x.shape[2:]), 1)
    cpu_gram = backend is NtkBackend.GRAM and x.device.type == "cpu"
    if cpu_gram and (output == "sum" or pixels >= GRAM_CPU_MIN_LOGITS_IMAGE_PIXELS):
        budget = GRAM_CPU_CHUNK_PIXELS
    else:
        budget = DEFAULT_CHUNK_PIXELS
    largest = max(1, min(n, budget // pixels))
    return math.ceil(n / math.ceil(n / largest))


def cpu_groups_per_pass(group_pixels: int) -> int:
    """Whole groups of ``group_pixels`` input pixels that fit one CPU micro-batch (:data:`GRAM_CPU_PACK_PIXELS`)."""
    return max(1, GRAM_CPU_PACK_PIXELS // max(group_pixels, 1))


def default_pack(group: torch.Tensor, n_groups: int) -> int:
    """Whole groups per micro-batch of a grouped batch (``group``: one group's inputs).

    CPU: :func:`cpu_groups_per_pass`. GPU: all of them (the caller sizes the batch to the free memory).
    """
    if group.device.type != "cpu":
        return n_groups
    return min(n_groups, cpu_groups_per_pass(group.shape[0] * max(math.prod(group.shape[2:]), 1)))


def _prepare_inputs(model: nn.Module, inputs: torch.Tensor, head: nn.Module | None, output: str,
                    chunk_size: int | None, channels_last: bool) -> tuple[_Outputs, torch.Tensor]:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if inputs.dim() < 2 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must be a non-empty batch (n, ...), got shape {tuple(inputs.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    net = _Outputs(model, head)
    _check_batch_independent(net)
    if inputs.dim() == 4:  # channels_last roughly halves CPU conv time at 84×84 (measured-here.md)
        inputs = inputs.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return net, inputs


def _result(theta: torch.Tensor, last: torch.Tensor | None, count: int, n_out: int) -> NTKResult:
    return NTKResult(theta=theta.cpu().numpy(), last_layer=None if last is None else last.cpu().numpy(),
                     n_outputs=n_out, param_count=count)


def grouped_empirical_ntk(
    model: nn.Module,
    inputs: torch.Tensor,
    n_groups: int,
    *,
    head: nn.Module | None = None,
    output: str = "sum",
    chunk_size: int | None = None,
    pack: int | None = None,
    channels_last: bool = True,
) -> list[NTKResult]:
    """The empirical NTKs of a batch grouped by candidate, one per group (the ``gram`` backend).

    ``inputs`` holds ``n_groups`` equal groups of consecutive samples. Group ``g`` runs with the model's
    group masks ``g`` (``model.forward_features(x, groups=pieces)``, e.g.
    :meth:`~metantk_nas.space.SearchSupernet.set_group_masks`) and, with a
    :class:`~metantk_nas.kernels._gram.GroupedLinear` head, with its head ``g`` (a plain ``nn.Linear`` head,
    or none, is shared). Each result equals :func:`empirical_ntk` of that group alone with its masks and head
    (up to float rounding: the batch size changes the convolution kernels' blocking); ``param_count`` counts
    the parameters reached by any group.

    Args:
        chunk_size: samples per micro-batch of a group larger than that (default as :func:`empirical_ntk` for
            one group's inputs).
        pack: whole groups per micro-batch (default :func:`default_pack`).
    """
    if n_groups < 1 or inputs.shape[0] % n_groups:
        raise ValueError(f"{inputs.shape[0]} inputs do not split into {n_groups} equal groups")
    net, inputs = _prepare_inputs(model, inputs, head, output, chunk_size, channels_last)
    group = inputs[: inputs.shape[0] // n_groups]
    chunk_size = chunk_size or _default_chunk(group, NtkBackend.GRAM, output)
    plan = plan_chunks(n_groups, group.shape[0], chunk_size, pack or default_pack(group, n_groups))
    theta, last, count, n_out = grouped_gram_kernel(net, inputs, n_groups, None, output, net.head, plan)
    return [_result(theta[g], None if last is None else last[g], count, n_out) for g in range(n_groups)]


def empirical_ntk(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    head: nn.Module | None = None,
    params: Sequence[nn.Parameter] | None = None,
    output: str = "sum",
    backend: str | NtkBackend = "auto",
    chunk_size: int | None = None,
    channels_last: bool = True,
) -> NTKResult:
    """Empirical NTK Θ and last-layer kernel 𝒦 of one batch (Paper Eq. 4 at θ₀; official §2.3).

    Args:
        model: has ``forward_features(x)`` and ``forward_head(features)`` (both networks of
            :mod:`metantk_nas.space`); its mode (train/eval) is used as is.
        inputs: (n, ...) batch on the model's device.
        head: a linear head applied to the features (MetaNTK: a fresh random 5-way head). Without it the
            model's own logits are the output (TE-NAS NTK mode, official §2.7).
        params: parameters of ``model``/``head`` to differentiate. Default: the official set, ``.weight``
            of every non-normalisation module on the executed path plus the head weight (no biases).
        output: ``"sum"`` (official scalar, n×n) or ``"logits"`` (paper, kn×kn, sample-major rows).
        backend: ``"auto"``, ``"loop"``, ``"opacus"``, ``"func"`` or ``"gram"`` (see :class:`NtkBackend`).
        chunk_size: samples per vectorised chunk for ``func`` and per micro-batch for ``gram``; default from
            :data:`DEFAULT_CHUNK_PIXELS` (``gram`` on a CPU: :data:`GRAM_CPU_CHUNK_PIXELS`, see
            :data:`GRAM_CPU_MIN_LOGITS_IMAGE_PIXELS`).
        channels_last: run image batches in channels_last (the faster layout for these convolutions on CPU
            and GPU); ``False`` keeps NCHW. The layout (like the batch size of ``loop``) selects different
            float32 convolution kernels, so kernels from different layouts differ by rounding (at full size in
            "logits" mode, measured against a float64 kernel: 6e-6 NCHW, 1.7e-5 channels_last relative).

    Returns:
        :class:`NTKResult` with float64 ``theta`` and ``last_layer`` (head weight only; for ``"sum"`` this is
        k × the Gram matrix of the features, official §2.3 item 6).
    """
    choice = resolve_backend(backend)
    net, inputs = _prepare_inputs(model, inputs, head, output, chunk_size, channels_last)
    chunk_size = chunk_size or _default_chunk(inputs, choice, output)
    return _result(*_BACKENDS[choice](net, inputs, params, output, chunk_size))


def resolve_backend(backend: str | NtkBackend) -> NtkBackend:
    """The backend a name selects (``auto`` → :data:`DEFAULT_BACKEND`); unknown names raise ``ValueError``."""
    try:
        choice = NtkBackend(backend)
    except ValueError:
        raise ValueError(f"backend must be one of {[b.value for b in NtkBackend]}, got {backend!r}") from None
    return DEFAULT_BACKEND if choice is NtkBackend.AUTO else choice

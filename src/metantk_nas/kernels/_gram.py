"""The ``gram`` NTK backend: one batched forward, per-layer per-sample gradients, Gram accumulated layer by layer.

Why it is fast: a batched backward already computes each layer's grad_output for every sample (samples
are independent when the network has no batch statistics), and the per-sample weight gradient of a
conv/linear layer is a batched contraction of that grad_output with the layer's input. So the pass
runs with the parameters' ``requires_grad`` switched off (autograd skips the weight gradients, whose
cost the contraction replaces), a tensor hook on each layer's output turns grad_output into the
layer's rows G_l (R × P_l) and adds G_l G_lᵀ to a float64 kernel at once. Only one layer's rows exist
at a time, instead of the R × P matrix of the other backends.

Which parameters enter the kernel is decided by the pass itself: a layer whose output never
receives a gradient (a removed op that did not run, the model's own classifier when a head is used)
contributes nothing and is not counted, exactly like the executed-path rule of
:func:`metantk_nas.kernels.ntk.default_parameters`.

Grouped batches (candidate batching in the search): the batch may be ``n_groups`` equal groups of
consecutive samples, each with its own kernel. Only the diagonal group blocks are formed: a layer's rows
of a micro-batch holding m whole groups become m Grams in one batched product (never the (m·n)² Gram).
Micro-batches either hold whole groups (:func:`plan_chunks` packs them) or part of one group (a group
larger than a micro-batch is split, its rows kept until its last piece, as for one group).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

#: One contiguous piece of a grouped batch: (group index, first sample within the group, samples).
Piece = tuple[int, int, int]


class GroupedLinear(nn.Module):
    """A linear layer with one weight and bias per group of a grouped batch (e.g. each candidate's own head).

    ``forward(x, groups)``: the samples of each piece ``(group, first, count)`` go through ``F.linear`` with
    that group's weight and bias, exactly as an ``nn.Linear`` holding them would compute. Its per-sample
    weight gradient is that of a linear layer (the group's own weight; other groups' weights get none), so
    within a group the rows and the Gram equal those of the group's ``nn.Linear``.
    """

    def __init__(self, linears: Sequence[nn.Linear]) -> None:
        super().__init__()
        if not linears or len({(m.in_features, m.out_features) for m in linears}) != 1:
            raise ValueError("GroupedLinear needs at least one nn.Linear, all of the same shape")
        self.in_features, self.out_features = linears[0].in_features, linears[0].out_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in linears]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears]))

    def forward(self, x: torch.Tensor, groups: Sequence[Piece]) -> torch.Tensor:
        parts, start = [], 0
        for group, _, count in groups:
            parts.append(F.linear(x[start : start + count], self.weight[group], self.bias[group]))
            start += count
        return parts[0] if len(parts) == 1 else torch.cat(parts)


#: Layers whose per-sample gradients have a closed form here.
SUPPORTED = (nn.Conv2d, nn.Linear, GroupedLinear)

#: Normalisation layers: their affine parameters never enter the kernel (official ``params_types='w'``).
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)

_AttrRows = dict[str, torch.Tensor]  # parameter attribute ("weight"/"bias") -> (n, numel) rows


def _flat(t: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) → (n, C, H·W), a view for contiguous and channels_last tensors alike."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).flatten(1, 2).transpose(1, 2)
    return t.reshape(t.shape[0], t.shape[1], -1)


def _conv_rows(conv: nn.Conv2d, act: torch.Tensor, grad_out: torch.Tensor, attrs: Sequence[str]) -> _AttrRows:
    """Per-sample gradients of a 2-D convolution (any kernel, stride, dilation, zero padding, groups).

    Depthwise layers (one input and one output channel per group) go one kernel offset (i, j) at a time:
    an elementwise product of grad_output with the strided window of the padded input that the offset saw,
    summed over space (10× faster than unfold + batched matrix-vector products, and no kh·kw-fold copy).
    Dense stride-1 layers with a spatial kernel go one offset at a time too, as batched matrix products
    with shifted views of the flattened padded input (:func:`_shifted_window_rows`); their columns are
    then offset-major, a fixed permutation of the weight's entries that leaves every Gram unchanged.
    Other layers contract grad_output with the unfolded input in one batched matrix product per group.
    """
    n, groups = act.shape[0], conv.groups
    rows: _AttrRows = {}
    if "weight" in attrs:
        padding = (0, 0) if conv.padding == "valid" else conv.padding
        if conv.padding_mode != "zeros" or isinstance(padding, str):
            raise ValueError(
                f"gram backend: Conv2d with padding={conv.padding!r}, padding_mode={conv.padding_mode!r} is not "
                "supported (zero padding given as numbers only); use backend='func'"
            )
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        c_out, c_in = conv.out_channels // groups, conv.in_channels // groups  # per group
        if c_out == c_in == 1:
            if padding != (0, 0):
                act = F.pad(act, (padding[1], padding[1], padding[0], padding[0]))
            height, width = grad_out.shape[2:]
            weight = act.new_empty(n, groups, kh, kw)
            for i in range(kh):
                for j in range(kw):
                    window = act[:, :, i * dh : i * dh + sh * (height - 1) + 1 : sh, j * dw : j * dw + sw * (width - 1) + 1 : sw]
                    weight[:, :, i, j] = (window * grad_out).sum((2, 3))
        elif groups == 1 and (sh, sw) == (1, 1) and (kh, kw) != (1, 1) and _row_waste_ok(kw, dw, grad_out.shape[3]):
            weight = _shifted_window_rows(act, grad_out, (kh, kw), padding, (dh, dw))
        else:
            if (kh, kw) == (1, 1) and padding == (0, 0):
                patches = _flat(act[:, :, ::sh, ::sw])  # (n, C_in, L)
            else:
                patches = F.unfold(act, (kh, kw), (dh, dw), padding, (sh, sw))  # (n, C_in·kh·kw, L)
            length = patches.shape[-1]
            weight = torch.matmul(
                _flat(grad_out).reshape(n, groups, c_out, length),
                patches.reshape(n, groups, -1, length).transpose(-1, -2),
            )  # (n, G, C_out/G, C_in/G·kh·kw)
        rows["weight"] = weight.reshape(n, -1)  # (C_out, C_in/G, kh, kw) order, or offset-major (shifted windows)
    if "bias" in attrs:
        rows["bias"] = _flat(grad_out).sum(-1)
    return rows


def _row_waste_ok(kw: int, dw: int, width: int) -> bool:
    """The shifted-window products also multiply the (kw − 1)·dw padding columns of every row (with zeros):
    worth it while that is at most a quarter of the row (measured: 2–3× faster than unfold at 16–32 px,
    slower at 8 px for 1×5 kernels)."""
    return 4 * (kw - 1) * dw <= width


def _shifted_window_rows(act: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                         padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """Per-sample weight gradients of a dense stride-1 convolution without unfold's kh·kw-fold copy.

    With the input zero-padded to width Wp and flattened over space, the input pixels that kernel offset
    (i, j) multiplies are one contiguous run of H·Wp positions starting at i·dh·Wp + j·dw, provided
    grad_output is zero-padded to the same width Wp (its extra columns cancel the wrapped-around pixels).
    Each offset is then one batched (C_out × H·Wp) @ (H·Wp × C_in) product on views. Returns
    (n, kh·kw·C_out·C_in) rows in offset-major order.
    """
    n, c_in, c_out = act.shape[0], act.shape[1], grad_out.shape[1]
    (kh, kw), (ph, pw), (dh, dw) = kernel, padding, dilation
    height, width = grad_out.shape[2:]
    padded_width = width + (kw - 1) * dw
    extra_rows = -(-(kw - 1) * dw // padded_width)  # room for the last offset's run past the bottom row
    flat_act = F.pad(act, (pw, pw, ph, ph + extra_rows)).permute(0, 2, 3, 1).reshape(n, -1, c_in)
    flat_grad = F.pad(grad_out, (0, padded_width - width)).permute(0, 2, 3, 1).reshape(n, -1, c_out).transpose(1, 2)
    length = height * padded_width
    rows = act.new_empty(n, kh * kw, c_out, c_in)
    for i in range(kh):
        for j in range(kw):
            start = i * dh * padded_width + j * dw
            rows[:, i * kw + j] = torch.bmm(flat_grad, flat_act[:, start : start + length])
    return rows.reshape(n, -1)


def _linear_rows(linear: nn.Linear, act: torch.Tensor, grad_out: torch.Tensor, attrs: Sequence[str]) -> _AttrRows:
    """Per-sample gradients of a linear layer applied to (n, ..., in_features)."""
    n = act.shape[0]
    go = grad_out.reshape(n, -1, linear.out_features)
    rows: _AttrRows = {}
    if "weight" in attrs:
        rows["weight"] = torch.bmm(go.transpose(1, 2), act.reshape(n, -1, linear.in_features)).reshape(n, -1)
    if "bias" in attrs:
        rows["bias"] = go.sum(1)
    return rows


def _row_numel(module: nn.Module, attr: str) -> int:
    """Columns of one per-sample row of ``module.attr`` (a grouped layer: one group's parameter)."""
    value = getattr(module, attr)
    return value[0].numel() if isinstance(module, GroupedLinear) else value.numel()


def _layer_rows(module: nn.Module, act: torch.Tensor, grad_out: torch.Tensor, attrs: Sequence[str]) -> _AttrRows:
    if isinstance(module, nn.Conv2d):
        return _conv_rows(module, act, grad_out, attrs)
    return _linear_rows(module, act, grad_out, attrs)


class _Layer:
    """One kernel layer during the pass: its activations per call and its rows per output component."""

    def __init__(self, name: str, module: nn.Module, attrs: tuple[str, ...], last: bool, acc: "_Accumulator"):
        self.name, self.module, self.attrs, self.last, self.acc = name, module, attrs, last, acc
        self.calls: list[tuple[torch.Tensor | None, int]] = []  # (input activation, its version at the call)
        self.reached = False  # a gradient arrived: the layer is on the path to the output
        self.current: _AttrRows | None = None  # rows of this pass, summed over calls
        self.passes: list[_AttrRows | torch.Tensor | None] = []  # per finished pass: rows, a deferred grad_output, or nothing
        self.numel = sum(_row_numel(module, a) for a in attrs)

    def forward_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if not torch.is_grad_enabled():
            return
        if not output.requires_grad:
            raise ValueError(
                f"gram backend: the output of {self.name!r} does not depend on the inputs, so its per-sample "
                "gradients are not seen by this backend; use backend='func'"
            )
        act = args[0].detach()
        self.calls.append((act, act._version))
        output.register_hook(partial(self._grad_hook, len(self.calls) - 1))

    def _grad_hook(self, call: int, grad_out: torch.Tensor) -> None:
        act, version = self.calls[call]
        self.reached = True
        if act._version != version:
            raise ValueError(f"gram backend: the input of {self.name!r} was modified in place after the layer ran")
        single = len(self.calls) == 1
        if single and self.acc.n_passes == 1:  # the common case: the layer's Gram now, rows freed at once
            self.acc.add(self, _layer_rows(self.module, act, grad_out, self.attrs))
            self.calls[call] = (None, version)  # the activation is no longer needed
            return
        if single and grad_out[0].numel() < self.numel:  # keep the smaller of grad_output and rows until the last pass
            self.current = grad_out
            return
        rows = _layer_rows(self.module, act, grad_out, self.attrs)
        self.current = rows if self.current is None else {a: self.current[a] + rows[a] for a in rows}

    def start_chunk(self) -> None:
        """Forget the activations of the previous micro-batch."""
        self.calls = []

    def end_pass(self) -> None:
        """Close one backward pass; after the last one, add the kn×kn block of this layer."""
        if self.acc.n_passes == 1:
            if self.current is not None:
                self.acc.add(self, self.current)
            self.current = None
            return
        self.passes.append(self.current)
        self.current = None
        if len(self.passes) < self.acc.n_passes:
            return
        passes, self.passes = self.passes, []  # this micro-batch's; the next may reach the layer when this did not
        if all(p is None for p in passes):
            return
        act = self.calls[0][0]
        per_pass = [_layer_rows(self.module, act, p, self.attrs) if isinstance(p, torch.Tensor) else p
                    for p in passes]
        shapes = next(p for p in per_pass if p is not None)
        per_pass = [p if p is not None else {a: torch.zeros_like(r) for a, r in shapes.items()} for p in per_pass]
        n = act.shape[0]
        self.acc.add(self, {a: torch.stack([p[a] for p in per_pass], 1).reshape(n * len(per_pass), -1) for a in shapes})
        self.calls = []


class _Accumulator:
    """float64 kernels of every group, fed one layer's float32 rows at a time.

    A micro-batch of whole groups turns each layer's rows into the groups' Grams at once (one batched
    product for several groups). A micro-batch holding part of one group keeps that layer's rows until the
    group's last piece has run, because its Gram pairs samples of different micro-batches.
    """

    def __init__(self, n_groups: int, group_size: int, with_last: bool, device: torch.device):
        self.n_groups, self.group_size, self.with_last, self.device = n_groups, group_size, with_last, device
        self.n_passes = 0
        self.theta = self.last = None
        self.pieces: Sequence[Piece] = ()
        self.kept: dict[tuple[_Layer, str], list[torch.Tensor]] = {}

    def start(self, n_out: int) -> int:
        """Allocate the groups' (n·k)² kernels once the forward has shown k; returns the number of backward passes."""
        self.n_passes = n_out
        n_rows = self.group_size * n_out
        self.theta = torch.zeros(self.n_groups, n_rows, n_rows, dtype=torch.float64, device=self.device)
        self.last = torch.zeros_like(self.theta) if self.with_last else None
        return n_out

    def begin_chunk(self, pieces: Sequence[Piece]) -> None:
        self.pieces = pieces

    def _whole_groups(self) -> bool:
        return all(first == 0 and count == self.group_size for _, first, count in self.pieces)

    def add(self, layer: _Layer, rows: _AttrRows) -> None:
        if not self._whole_groups():
            for attr, block in rows.items():
                self.kept.setdefault((layer, attr), []).append(block)
            return
        first_group, m = self.pieces[0][0], len(self.pieces)
        for attr, block in rows.items():
            if m == 1:
                grams = (block @ block.T).unsqueeze(0)
            else:
                blocks = block.reshape(m, -1, block.shape[-1])
                grams = torch.bmm(blocks, blocks.transpose(1, 2))
            self._add_grams(layer, attr, first_group, grams)

    def end_chunk(self) -> None:
        """After a micro-batch: a split group whose last piece ran gets its kept rows' Grams."""
        if self._whole_groups():
            return
        ((group, first, count),) = self.pieces
        if first + count < self.group_size:
            return
        for (layer, attr), blocks in self.kept.items():
            block = torch.cat(blocks)
            if block.shape[0] != self.theta.shape[1]:
                raise RuntimeError(f"gram backend: {layer.name!r} was reached by only some micro-batches")
            self._add_grams(layer, attr, group, (block @ block.T).unsqueeze(0))
        self.kept = {}

    def _add_grams(self, layer: _Layer, attr: str, first_group: int, grams: torch.Tensor) -> None:
        stop = first_group + grams.shape[0]
        self.theta[first_group:stop] += grams
        if layer.last and attr == "weight":
            self.last[first_group:stop] += grams


def plan_chunks(n_groups: int, group_size: int, chunk_size: int, pack: int = 1) -> list[list[Piece]]:
    """Micro-batches of a batch of ``n_groups`` equal groups, each a list of pieces ``(group, first, count)``.

    A group larger than ``chunk_size`` is split into pieces of ``chunk_size`` samples (the last may be
    smaller), one micro-batch each. Otherwise whole groups are packed, at most ``pack`` per micro-batch,
    balanced (10 groups with ``pack`` 4 → 4 + 3 + 3).
    """
    if min(n_groups, group_size, chunk_size, pack) < 1:
        raise ValueError(f"n_groups, group_size, chunk_size and pack must be >= 1, got "
                         f"{n_groups}, {group_size}, {chunk_size}, {pack}")
    if chunk_size < group_size:
        return [[(group, first, min(chunk_size, group_size - first))]
                for group in range(n_groups) for first in range(0, group_size, chunk_size)]
    n_chunks = math.ceil(n_groups / pack)
    plan, group = [], 0
    for index in range(n_chunks):
        size = n_groups // n_chunks + (index < n_groups % n_chunks)
        plan.append([(g, 0, group_size) for g in range(group, group + size)])
        group += size
    return plan


def _unsupported_hook(name: str, module: nn.Module, args: tuple, output) -> None:
    """Forward hook of a weighted layer without a closed form: fail as soon as a gradient reaches it."""

    def fail(grad: torch.Tensor) -> None:
        raise ValueError(
            f"gram backend: {name!r} ({type(module).__name__}) has kernel parameters but only "
            f"{', '.join(t.__name__ for t in SUPPORTED)} are supported; use backend='func'"
        )

    outputs = output if isinstance(output, (tuple, list)) else (output,)
    for out in outputs:
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(fail)


def _targets(net: nn.Module, params: Sequence[nn.Parameter] | None) -> dict[str, tuple[nn.Module, tuple[str, ...]]]:
    """module name → (module, kernel attributes). Default: ``weight`` of every non-normalisation layer."""
    owners = {}
    for name, module in net.named_modules():
        for attr, p in module.named_parameters(recurse=False):
            owners[id(p)] = (name, module, attr)
    targets: dict[str, tuple[nn.Module, tuple[str, ...]]] = {}
    if params is None:
        for name, module in net.named_modules():
            weight = getattr(module, "weight", None)
            if not isinstance(module, NORM_TYPES) and isinstance(weight, nn.Parameter) and weight.requires_grad:
                targets[name] = (module, ("weight",))
        return targets
    for p in params:
        if id(p) not in owners:
            raise ValueError("params must be parameters of model or head")
        name, module, attr = owners[id(p)]
        if not isinstance(module, SUPPORTED) or attr not in ("weight", "bias"):
            raise ValueError(
                f"gram backend: parameter {name}.{attr} ({type(module).__name__}) is not a weight or bias of "
                f"{' or '.join(t.__name__ for t in SUPPORTED)}; use backend='func'"
            )
        attrs = targets.get(name, (module, ()))[1]
        targets[name] = (module, attrs if attr in attrs else (*attrs, attr))
    return targets


def gram_kernel(net: nn.Module, inputs: torch.Tensor, params: Sequence[nn.Parameter] | None, output: str,
                last_module: nn.Module | None, chunk_size: int | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
    """Θ and the kernel of ``last_module.weight`` (float64 (R, R) tensors), the number of scalar parameters
    summed over and the outputs per sample. ``net(x)`` returns (n, k) logits; ``"sum"`` takes one backward
    of Σ_n Σ_c z_c(x_n), ``"logits"`` k backwards of Σ_n z_c(x_n) through one retained graph.

    ``chunk_size`` runs the batch as micro-batches of that many samples (same kernel): activation memory
    falls with the micro-batch, at the price of keeping every layer's rows (R × P floats) until the end."""
    n = inputs.shape[0]
    plan = plan_chunks(1, n, chunk_size or n)
    theta, last, count, n_out = grouped_gram_kernel(net, inputs, 1, params, output, last_module, plan, grouped=False)
    return theta[0], None if last is None else last[0], count, n_out


def grouped_gram_kernel(net: nn.Module, inputs: torch.Tensor, n_groups: int, params: Sequence[nn.Parameter] | None,
                        output: str, last_module: nn.Module | None, plan: Sequence[Sequence[Piece]],
                        grouped: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
    """:func:`gram_kernel` of a batch of ``n_groups`` equal groups of consecutive samples, each its own kernel.

    Returns (G, R, R) float64 Θ and last-layer kernels (the diagonal group blocks only), the number of scalar
    parameters reached by some group, and the outputs per sample. ``plan``: the micro-batches
    (:func:`plan_chunks`); with ``grouped`` each runs as ``net(x, pieces)`` (the network picks each piece's
    masks and head), else as ``net(x)``.
    """
    if inputs.shape[0] % n_groups:
        raise ValueError(f"{inputs.shape[0]} samples do not split into {n_groups} equal groups")
    group_size = inputs.shape[0] // n_groups
    targets = _targets(net, params)
    with_last = last_module is not None and "weight" in next(
        (attrs for m, attrs in targets.values() if m is last_module), ()
    )
    acc = _Accumulator(n_groups, group_size, with_last, inputs.device)
    layers = [_Layer(name, m, attrs, m is last_module, acc) for name, (m, attrs) in targets.items()]
    flags = [(p, p.requires_grad) for p in net.parameters()]
    handles = []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        for layer in layers:
            if isinstance(layer.module, SUPPORTED):
                handles.append(layer.module.register_forward_hook(layer.forward_hook))
            else:
                handles.append(layer.module.register_forward_hook(partial(_unsupported_hook, layer.name)))
        for pieces in plan:
            start = pieces[0][0] * group_size + pieces[0][1]
            stop = start + sum(count for _, _, count in pieces)
            acc.begin_chunk(pieces)
            for layer in layers:
                layer.start_chunk()
            x = inputs[start:stop].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = net(x, pieces) if grouped else net(x)
                n_out = 1 if output == "sum" else logits.shape[-1]
                n_passes = acc.start(n_out) if acc.theta is None else n_out
                for c in range(n_passes):
                    target = logits.sum() if output == "sum" else logits[:, c].sum()
                    torch.autograd.grad(target, x, retain_graph=c + 1 < n_passes)
                    for layer in layers:
                        layer.end_pass()
            acc.end_chunk()
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
    reached = [layer for layer in layers if layer.reached]
    if params is None:
        count = sum(layer.numel for layer in reached)
    else:
        count = sum(p.numel() for p in params)
    if not reached:
        raise ValueError("no parameters reach the output: nothing to differentiate")
    return acc.theta, acc.last, count, n_out

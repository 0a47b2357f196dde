"""Fully connected network (tanh by default, or ReLU) in NTK parameterisation, and its exact empirical NTK.

The theory (Paper §4, Appendix A-B) is stated for an MLP with ``L`` hidden layers of width ``l``.
In NTK parameterisation every weight is drawn from N(0, 1) and each layer's output is multiplied
by ``sigma_w / sqrt(fan_in)``; gradient descent with rate ``eta`` on it is gradient descent with
rate ``eta / l`` in the standard parameterisation of the paper's Eq. (16), and the paper's
normalised kernel ``(1/l) J J^T`` (its footnote 12) becomes plain ``J J^T``. So the learning rates
and kernels used here are O(1) and width-independent in the limit.

The inputs are unit-norm vectors (the paper's Assumption 1). As in Arora et al. 2019 (the
paper's reference [4], whose assumptions it adopts) the first layer therefore has no
``1/sqrt(d)`` factor: ``||x|| = 1`` already gives its pre-activations unit variance. Later layers
use ``gain / sqrt(fan_in)`` with the gain that keeps unit pre-activation variance from layer to layer.
There are no biases.

Activation: ``tanh`` by default, because the proof's Lemma 1 (a locally Lipschitz Jacobian, from
Lee et al. 2019) needs a smooth activation. ``relu`` is available for comparison: its derivative jumps,
so units that cross zero change the Jacobian by O(1) each and ``||J_t - J_0|| / ||J_0||`` shrinks only
like ``l^{-1/4}`` instead of ``l^{-1/2}``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from metantk_nas.theory.config import ACTIVATIONS


def activation_gain(name: str) -> float:
    """``1 / sqrt(E[phi(z)^2])`` for ``z ~ N(0, 1)``: keeps unit pre-activation variance through a layer."""
    if name == "relu":
        return math.sqrt(2.0)
    if name == "tanh":
        nodes, weights = np.polynomial.hermite_e.hermegauss(101)  # exact to high order for smooth phi
        return float(1.0 / math.sqrt((weights * np.tanh(nodes) ** 2).sum() / weights.sum()))
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def activate(name: str, h: torch.Tensor) -> torch.Tensor:
    """``phi(h)``."""
    return torch.relu(h) if name == "relu" else torch.tanh(h)


def activation_derivative(name: str, h: torch.Tensor) -> torch.Tensor:
    """``phi'(h)``, differentiable where ``phi`` is twice differentiable (ReLU's second derivative is 0 a.e.)."""
    if name == "relu":
        return (h > 0).to(h.dtype)
    return 1.0 - torch.tanh(h) ** 2


class NTKMLP(nn.Module):
    """``x -> c_{L+1} W_{L+1} phi(... phi(c_1 W_1 x))`` with N(0, 1) weights.

    ``c_1 = 1`` (unit-norm inputs) and ``c_i = gain / sqrt(fan_in)`` for the other layers.
    Parameters are named ``weights.0`` ... ``weights.L`` so that
    :func:`torch.func.functional_call` can evaluate the network at any parameter point.
    """

    def __init__(self, in_features: int, width: int, depth: int, out_features: int, *, activation: str = "tanh",
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        gain = activation_gain(activation)
        if min(in_features, width, depth, out_features) < 1:
            raise ValueError(
                f"NTKMLP needs positive sizes, got in_features={in_features}, width={width}, "
                f"depth={depth}, out_features={out_features}")
        sizes = [in_features] + [width] * depth + [out_features]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(fan_out, fan_in, generator=generator, dtype=dtype))
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))
        self.multipliers = tuple([1.0] + [gain / math.sqrt(fan_in) for fan_in in sizes[1:-1]])
        self.activation = activation
        self.width = width
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(..., out_features)`` for inputs ``(..., in_features)``."""
        z = x
        last = len(self.weights) - 1
        for index, (weight, scale) in enumerate(zip(self.weights, self.multipliers)):
            z = scale * (z @ weight.T)
            if index < last:
                z = activate(self.activation, z)
        return z

    @torch.no_grad()
    def ntk(self, x: torch.Tensor) -> torch.Tensor:
        """Exact empirical NTK ``J J^T`` over (sample, output) rows, sample-major: ``(B*k, B*k)``.

        Uses the layer structure ``d f_c / d W_i = c_i delta_i^c (z_{i-1})^T`` so that no per-sample
        gradient of size ``D`` is ever formed:
        ``Theta = sum_i c_i^2 <delta_i^c(x), delta_i^c'(x')> <z_{i-1}(x), z_{i-1}(x')>``.
        Cost is O(B^2 k^2 l) rather than O(B k D), which makes wide networks and many test tasks cheap.
        """
        weights = [weight.to(x.dtype) for weight in self.weights]  # e.g. float64 kernels of a float32 network
        activations = [x]  # z_0 .. z_L
        derivatives = []  # phi'(h_1) .. phi'(h_L)
        z = x
        for weight, scale in zip(weights[:-1], self.multipliers[:-1]):
            h = scale * (z @ weight.T)
            derivatives.append(activation_derivative(self.activation, h))
            z = activate(self.activation, h)
            activations.append(z)
        batch, k = x.shape[0], weights[-1].shape[0]
        # delta for the read-out layer: d f_c / d h_{L+1} = e_c for every sample.
        delta = torch.eye(k, dtype=x.dtype, device=x.device).expand(batch, k, k)
        kernel = torch.zeros(batch * k, batch * k, dtype=x.dtype, device=x.device)
        for index in range(len(weights) - 1, -1, -1):
            scale = self.multipliers[index]
            flat = delta.reshape(batch * k, -1)
            gram_delta = flat @ flat.T
            z_prev = activations[index]
            gram_z = torch.repeat_interleave(torch.repeat_interleave(z_prev @ z_prev.T, k, 0), k, 1)
            kernel += scale**2 * gram_delta * gram_z
            if index > 0:
                delta = (scale * (delta @ weights[index])) * derivatives[index - 1].unsqueeze(1)
        return kernel

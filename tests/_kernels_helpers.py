"""Small networks for the kernel tests (forward_features / forward_head like the networks of the search space)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev


class NTKMLP(nn.Module):
    """Two-hidden-layer ReLU MLP in NTK parameterisation (N(0,1) weights, 1/√fan_in in the forward)."""

    def __init__(self, d_in: int, width: int, n_out: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        self.fc1 = nn.Linear(d_in, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, n_out, bias=False)
        with torch.no_grad():
            for layer in (self.fc1, self.fc2, self.out):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h1 = torch.relu(self.fc1(x) / math.sqrt(self.fc1.in_features))
        return torch.relu(self.fc2(h1) / math.sqrt(self.fc2.in_features))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(features) / math.sqrt(self.out.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def direct_meta_ntk(model: NTKMLP, query: torch.Tensor, support: torch.Tensor, targets: torch.Tensor,
                    lam: float, steps: int) -> torch.Tensor:
    """Paper Eq. (4) without the analytical shortcut: J Jᵀ of F_θ(X, X', Y') = f_θ'(X), where θ' is θ after
    ``steps`` gradient steps of rate ``lam`` on ½‖f_θ(X') − Y'‖², differentiated through the inner loop.

    query (T, q, d), support (T, s, d), targets (T, s): rows of the result are task-major queries.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}

    def f(p, x):
        return functional_call(model, (p,), (x,)).squeeze(-1)

    def meta_output(p, xq, xs, ys):
        adapted = p
        for _ in range(steps):
            g = grad(lambda q: 0.5 * ((f(q, xs) - ys) ** 2).sum())(adapted)
            adapted = {name: adapted[name] - lam * g[name] for name in adapted}
        return f(adapted, xq)

    jacobians = []
    for t in range(query.shape[0]):
        jac = jacrev(meta_output)(params, query[t], support[t], targets[t])
        jacobians.append(torch.cat([j.reshape(query.shape[1], -1) for j in jac.values()], dim=1))
    jac_all = torch.cat(jacobians).double()
    return jac_all @ jac_all.T

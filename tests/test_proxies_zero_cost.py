"""The zero-cost proxies against values computed another way: Hamming loops, closed forms, numpy, a hand count."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metantk_nas.proxies import flops, grad_norm, jacob_cov, naswot, params, snip, synflow
from metantk_nas.proxies.zero_cost import JACOB_COV_K

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise(net: nn.Module, seed: int) -> nn.Module:
    """Every floating-point parameter drawn from N(0, 1) (signs of both kinds), from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return net


class MLP(nn.Module):
    """flatten → fc1 → nn.ReLU → fc2 → nn.ReLU(inplace) → fc3 → F.relu (no module: unseen by NASWOT)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act1 = nn.Linear(4, 6), nn.ReLU()
        self.fc2, self.act2 = nn.Linear(6, 5), nn.ReLU(inplace=True)
        self.fc3 = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc3(self.act2(self.fc2(self.act1(self.fc1(x.flatten(1)))))))


def test_naswot_equals_the_hamming_kernel_of_explicit_loops():
    net = _randomise(MLP().double(), 0)
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h, codes = x.flatten(1).numpy(), []
    for layer in (net.fc1, net.fc2):  # the two nn.ReLU modules; the final F.relu is not one
        h = np.maximum(h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy(), 0)
        codes.append(h > 0)
    c = np.concatenate(codes, axis=1)
    n_units = c.shape[1]
    kernel = np.empty((6, 6))
    for i in range(6):
        for j in range(6):
            kernel[i, j] = n_units - sum(int(c[i, u] != c[j, u]) for u in range(n_units))
    sign, logdet = np.linalg.slogdet(kernel)
    assert sign != 0 and len({tuple(row) for row in c}) == 6  # a non-degenerate case
    assert naswot(net, x) == pytest.approx(logdet, rel=1e-12)
    x[5] = x[4]  # two equal codes: K_H is singular
    assert naswot(net, x) == -math.inf


def test_naswot_refuses_a_network_without_relu_modules():
    with pytest.raises(ValueError, match="nn.ReLU"):
        naswot(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(3, 1, 2, 2))


def test_synflow_of_a_bias_free_relu_mlp_is_depth_times_the_path_sum():
    # With |W| and an all-ones input every pre-activation is positive, so R = 1ᵀ|W3||W2||W1|1 and layer l's
    # Σ|W_l ⊙ ∂R/∂W_l| = uᵀ|W_l|v with u = (1ᵀ|W3|⋯|W_{l+1}|)ᵀ, v = |W_{l-1}|⋯|W1|1: R again, so 3R.
    # The BatchNorm layers (non-trivial affine and running statistics) must be bypassed, not applied.
    net = _randomise(nn.Sequential(
        nn.Flatten(), nn.Linear(4, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
        nn.Linear(5, 3, bias=False), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2, bias=False),
    ), 2)
    for norm in (net[2], net[5]):
        norm.running_mean.fill_(0.7)
        norm.running_var.fill_(3.0)
    w1, w2, w3 = (np.abs(net[i].weight.detach().double().numpy()) for i in (1, 4, 7))
    flow = np.ones(2) @ w3 @ w2 @ w1 @ np.ones(4)
    assert synflow(net, torch.randn(7, 1, 2, 2)) == pytest.approx(3 * flow, rel=1e-12)


class ConvNet(nn.Module):
    """conv (bias) → BatchNorm → ReLU → grouped conv → GroupNorm → ReLU → pool → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.gn = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False), nn.GroupNorm(2, 4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.gn(self.conv2(self.relu(self.bn(self.conv1(x))))))
        return self.fc(h.mean((2, 3)))


def test_synflow_equals_autograd_on_a_linearised_copy_without_normalisation():
    net = _randomise(ConvNet(), 3).eval()
    reference = copy.deepcopy(net).double()
    reference.bn, reference.gn = nn.Identity(), nn.Identity()
    with torch.no_grad():
        for p in reference.parameters():
            p.abs_()
    reference(torch.ones(1, 2, 5, 5, dtype=torch.float64)).sum().backward()
    layers = (reference.conv1, reference.conv2, reference.fc)
    expected = sum(float((layer.weight.detach() * layer.weight.grad).abs().sum()) for layer in layers)
    assert synflow(net, torch.randn(3, 2, 5, 5)) == pytest.approx(expected, rel=1e-12)


def test_snip_and_grad_norm_of_one_linear_layer_equal_the_softmax_gradient():
    # L = mean_i CE(W x_i + b, y_i): ∂L/∂W = (P − Y)ᵀ X / N (P the softmax, Y the one-hot labels); no bias term.
    net = _randomise(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double(), 4)
    x = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2, 0])
    w, b = net[1].weight.detach().numpy(), net[1].bias.detach().numpy()
    features = x.flatten(1).numpy()
    logits = features @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gradient = (p - np.eye(3)[y.numpy()]).T @ features / 5
    assert snip(net, x, y) == pytest.approx(np.abs(w * gradient).sum(), rel=1e-12)
    assert grad_norm(net, x, y) == pytest.approx(np.linalg.norm(gradient), rel=1e-12)


def test_snip_and_grad_norm_sum_the_conv_and_linear_weights_in_train_mode():
    net = _randomise(ConvNet(), 6).double().eval()  # the proxies run it in train mode (batch statistics)
    x = torch.randn(4, 2, 5, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = torch.tensor([2, 0, 1, 1])
    reference = copy.deepcopy(net).train()
    F.cross_entropy(reference(x), y).backward()
    layers = (reference.conv1, reference.conv2, reference.fc)  # not the norms' weights, not the biases
    assert snip(net, x, y) == pytest.approx(
        sum(float((layer.weight.detach() * layer.weight.grad).abs().sum()) for layer in layers), rel=1e-12)
    assert grad_norm(net, x, y) == pytest.approx(sum(float(layer.weight.grad.norm()) for layer in layers), rel=1e-12)


def _jacob_cov_score(eigenvalues: np.ndarray) -> float:
    return float(-np.sum(np.log(eigenvalues + JACOB_COV_K) + 1.0 / (eigenvalues + JACOB_COV_K)))


def test_jacob_cov_of_a_linear_model_has_the_closed_form():
    # f(x) = W x + b: every Jacobian row is 1ᵀW, the correlation matrix is all ones, its eigenvalues N, 0, …, 0.
    net = _randomise(nn.Sequential(nn.Flatten(), nn.Linear(9, 3)).double(), 8)
    n, k = 5, JACOB_COV_K
    expected = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert jacob_cov(net, torch.randn(n, 1, 3, 3, dtype=torch.float64)) == pytest.approx(expected, rel=1e-9)


class Quadratic(nn.Module):
    """f(x) = W (x ⊙ x) + b: row i of the Jacobian of Σ_k f_k is 2 x_i ⊙ (Wᵀ1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1) ** 2)


def test_jacob_cov_of_a_quadratic_model_equals_numpy_on_the_analytic_jacobian():
    net = _randomise(Quadratic().double(), 9)
    x = torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    rows = 2 * x.flatten(1).numpy() * net.fc.weight.detach().numpy().sum(0)
    eigenvalues = np.linalg.eig(np.corrcoef(rows))[0].real  # the reference's eig
    assert jacob_cov(net, x) == pytest.approx(_jacob_cov_score(eigenvalues), rel=1e-9)
    x[2] = 0  # a zero (constant) row has no correlation: NaN, as the reference
    assert math.isnan(jacob_cov(net, x))


class CountedNet(nn.Module):
    """3→8 conv 3×3 (bias), BatchNorm, a depthwise conv run twice, a grouped strided 1×1 conv, pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 4, 1, stride=2, groups=2, bias=False)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(self.depthwise(torch.relu(self.bn(self.conv(x)))))
        return self.fc(self.grouped(h).mean((2, 3)))


def test_params_and_flops_by_hand():
    net = CountedNet()
    net.fc.bias.requires_grad_(False)  # frozen: not a trainable parameter
    # params: conv 8·3·9 + 8 = 224, bn 8 + 8 = 16, depthwise 8·1·9 = 72 (shared: once), grouped 4·4·1 = 16,
    # fc weight 5·4 = 20 → 348.
    assert params(net) == 348
    # MACs on one 8×8 input: conv 8·8·8 outputs × 3·9 = 13824; depthwise twice 2 × 512 × 9 = 9216;
    # grouped 4·4·4 outputs × (8/2)·1 = 256; fc 5 × 4 = 20 → 23316 (the batch of 3 counts as one input).
    assert flops(net, torch.randn(3, 3, 8, 8)) == 13824 + 9216 + 256 + 20

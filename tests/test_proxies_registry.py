"""The proxy registry: names, order, directions and needs; the kernel entries delegate to the kernels; no proxy
changes the network it scores."""

import re

import pytest
import torch
from torch import nn

from metantk_nas.kernels import make_head, metantk_condition, ntk_condition
from metantk_nas.kernels.cli import KERNELS
from metantk_nas.proxies import PROXIES, Proxy, get_proxy, zero_cost
from metantk_nas.proxies.linear_regions import linear_regions
from metantk_nas.space import SearchSupernet

pytestmark = pytest.mark.usefixtures("one_thread")

ZERO_COST = ["naswot", "synflow", "snip", "grad-norm", "jacob-cov", "params", "flops"]


def test_registry_order_and_unknown_names():
    assert list(PROXIES) == ["metantk-maml", "metantk-anil", "ntk", "linear-regions", *ZERO_COST]
    assert all(proxy.name == name for name, proxy in PROXIES.items())
    assert get_proxy("grad-norm") is PROXIES["grad-norm"]
    with pytest.raises(ValueError, match=re.escape(f"unknown proxy 'gradnorm'; expected one of {list(PROXIES)}")):
        get_proxy("gradnorm")


def test_directions_and_needs():
    assert [name for name, proxy in PROXIES.items() if not proxy.higher_is_better] == ["metantk-maml", "metantk-anil",
                                                                                         "ntk"]
    assert {name: (proxy.network, proxy.inputs) for name, proxy in PROXIES.items() if proxy.network != "any"} == {
        "metantk-maml": ("supernet", "tasks"), "metantk-anil": ("supernet", "tasks"),
        "ntk": ("supernet", "images"), "linear-regions": ("thin", "images"),
    }
    assert all(PROXIES[name].inputs == "images" for name in ZERO_COST)
    assert [name for name, proxy in PROXIES.items() if proxy.needs_labels] == ["snip", "grad-norm"]
    assert PROXIES["linear-regions"].scorer is linear_regions
    assert [PROXIES[name].scorer for name in ZERO_COST] == [
        zero_cost.naswot, zero_cost.synflow, zero_cost.snip, zero_cost.grad_norm, zero_cost.jacob_cov,
        zero_cost.params, zero_cost.flops,
    ]
    with pytest.raises(ValueError, match="network must be one of"):
        Proxy("x", "X", "builtins:len", True, "supernets", "images", False, "")


def _supernet() -> SearchSupernet:
    torch.manual_seed(0)
    return SearchSupernet(C=4, n_cells=5, num_classes=5, norm="group").double().train()


def test_kernel_proxies_are_the_kernel_condition_numbers():
    """Every ``metantk-nas kernel --kernel`` name is a proxy whose score is that kernel's condition number."""
    net = _supernet()
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(2, 3, 3, 8, 8, generator=generator, dtype=torch.float64)
    support = torch.randn(2, 2, 3, 8, 8, generator=generator, dtype=torch.float64)
    head = make_head(net.num_features, 5, torch.Generator().manual_seed(2)).double()
    values = {}
    for name, (condition, algorithm) in KERNELS.items():
        proxy = get_proxy(name)
        if condition == "metantk":
            values[name] = proxy.score(net, query, support, head, lam_tau=1.0, reg=1e-5)
            expected = metantk_condition(net, query, support, head=head, algorithm=algorithm, lam_tau=1.0, reg=1e-5)
        else:
            values[name] = proxy.score(net, query[0])
            expected = ntk_condition(net, query[0])
        assert values[name] == float(expected.value)
    assert len(set(values.values())) == len(KERNELS)  # MAML and ANIL differ: the algorithm reaches the kernel


def _state(net: nn.Module) -> dict[str, object]:
    """Everything a proxy must leave as it was: values and dtypes of parameters and buffers, gradients,
    requires_grad flags, modes, hooks."""
    return {
        "parameters": {n: (p.detach().clone(), p.requires_grad, None if p.grad is None else p.grad.clone())
                       for n, p in net.named_parameters()},
        "buffers": {n: b.clone() for n, b in net.named_buffers()},
        "modes": [m.training for m in net.modules()],
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()),
    }


def _assert_same(before: dict[str, object], after: dict[str, object]) -> None:
    assert before["modes"] == after["modes"] and before["hooks"] == after["hooks"]
    for kind in ("parameters", "buffers"):
        assert before[kind].keys() == after[kind].keys()
    for name, (value, flag, grad) in before["parameters"].items():
        value_after, flag_after, grad_after = after["parameters"][name]
        assert value.dtype == value_after.dtype and torch.equal(value, value_after) and flag == flag_after, name
        assert (grad is None and grad_after is None) or torch.equal(grad, grad_after), name
    for name, value in before["buffers"].items():
        assert value.dtype == after["buffers"][name].dtype and torch.equal(value, after["buffers"][name]), name


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.relu(self.bn(self.conv(x))).mean((2, 3))))


@pytest.mark.parametrize("name", ZERO_COST)
def test_zero_cost_proxies_leave_the_network_unchanged(name: str):
    torch.manual_seed(3)
    net = Net().eval()
    net.fc.train()  # mixed modes: each module's own must come back
    net.conv.bias.requires_grad_(False)
    net.conv.weight.grad = torch.full_like(net.conv.weight, 0.5)
    net.bn.running_mean.fill_(0.25)
    net.bn.running_var.fill_(2.0)
    x, y = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 1])
    before = _state(net)
    proxy = get_proxy(name)
    proxy.score(net, x, y) if proxy.needs_labels else proxy.score(net, x)
    _assert_same(before, _state(net))


def test_kernel_proxies_leave_the_supernet_unchanged():
    net = _supernet()
    net.classifier.weight.grad = torch.ones_like(net.classifier.weight)
    images = torch.randn(2, 1, 3, 8, 8, dtype=torch.float64)
    head = make_head(net.num_features, 5, torch.Generator().manual_seed(4)).double()
    before = _state(net)
    get_proxy("metantk-anil").score(net, images, images, head)
    get_proxy("ntk").score(net, images[0])
    _assert_same(before, _state(net))

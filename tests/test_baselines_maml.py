"""MAML / ANIL meta-gradients (second and first order) against references, and test-time adaptation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metantk_nas.baselines.maml import adapt_and_predict, adapted_names, inner_loop, meta_loss
from metantk_nas.space.backbones import Conv4

pytestmark = pytest.mark.usefixtures("one_thread")

WAYS, SHOTS, QUERIES, TASKS = 3, 2, 2, 2
Tasks = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _tiny_conv4(seed: int = 0) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(num_classes=WAYS, image_size=16, width=2).double().train()


def _tasks(seed: int = 1) -> Tasks:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(WAYS)
    support_y = labels.repeat_interleave(SHOTS).expand(TASKS, -1).contiguous()
    query_y = labels.repeat_interleave(QUERIES).expand(TASKS, -1).contiguous()
    support_x = torch.randn(TASKS, WAYS * SHOTS, 3, 16, 16, generator=g, dtype=torch.float64)
    query_x = torch.randn(TASKS, WAYS * QUERIES, 3, 16, 16, generator=g, dtype=torch.float64)
    return support_x, support_y, query_x, query_y


def _meta_grads(model: nn.Module, tasks: Tasks, **kwargs: object) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss, accuracy = meta_loss(model, *tasks, **kwargs)
    assert accuracy.dim() == 0 and 0 <= accuracy.item() <= 1
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_adapted_names() -> None:
    model = _tiny_conv4()
    assert adapted_names(model, "all") == [n for n, _ in model.named_parameters()]
    assert adapted_names(model, "head") == ["head.weight", "head.bias"]
    with pytest.raises(ValueError, match="adapt must be"):
        adapted_names(model, "body")


@pytest.mark.parametrize("adapt", ["all", "head"])
def test_second_order_meta_gradient_matches_finite_differences(adapt: str) -> None:
    model, tasks = _tiny_conv4(), _tasks()
    settings = dict(steps=2, lr=0.5, adapt=adapt, first_order=False)
    grads = _meta_grads(model, tasks, **settings)
    params = dict(model.named_parameters())
    entries = [("features.0.weight", (1, 2, 1, 0)), ("features.1.weight", (0,)), ("features.8.bias", (1,)),
               ("features.13.weight", (1,)), ("head.weight", (2, 1)), ("head.bias", (0,))]
    eps = 1e-6
    analytic, numeric = [], []
    for name, idx in entries:
        p = params[name]
        original = p.detach()[idx].item()
        values = []
        for shifted in (original + eps, original - eps):
            with torch.no_grad():
                p[idx] = shifted
            values.append(meta_loss(model, *tasks, **settings)[0].item())
        with torch.no_grad():
            p[idx] = original
        numeric.append((values[0] - values[1]) / (2 * eps))
        analytic.append(grads[name][idx].item())
    analytic_t, numeric_t = torch.tensor(analytic), torch.tensor(numeric)
    assert analytic_t.abs().min() > 0
    assert ((analytic_t - numeric_t).norm() / analytic_t.norm()).item() < 1e-6


def _fomaml_by_hand(model: nn.Module, tasks: Tasks, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """FOMAML: mean over tasks of the query gradient at the SGD-adapted parameters (plain modules, no torch.func)."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for sx, sy, qx, qy in zip(*tasks):
        learner = copy.deepcopy(model)
        for _ in range(steps):
            grads = torch.autograd.grad(F.cross_entropy(learner(sx), sy), list(learner.parameters()))
            with torch.no_grad():
                for p, g in zip(learner.parameters(), grads):
                    p -= lr * g
        grads = torch.autograd.grad(F.cross_entropy(learner(qx), qy), list(learner.parameters()))
        for (n, _), g in zip(learner.named_parameters(), grads):
            total[n] += g / len(tasks[0])
    return total


def test_first_order_meta_gradient_is_fomaml() -> None:
    model, tasks = _tiny_conv4(), _tasks()
    grads = _meta_grads(model, tasks, steps=3, lr=0.5, adapt="all", first_order=True)
    reference = _fomaml_by_hand(model, tasks, steps=3, lr=0.5)
    for name in reference:
        torch.testing.assert_close(grads[name], reference[name], rtol=1e-10, atol=1e-12)
    second = _meta_grads(model, tasks, steps=3, lr=0.5, adapt="all", first_order=False)
    assert not torch.allclose(second["features.0.weight"], grads["features.0.weight"])


def test_anil_inner_loop_leaves_body_tensors_untouched() -> None:
    model, (sx, sy, _, _) = _tiny_conv4(), _tasks()
    params = dict(model.named_parameters())
    names = adapted_names(model, "head")
    adapted = inner_loop(model, params, sx[0], sy[0], steps=2, lr=0.5, names=names, create_graph=False)
    assert adapted.keys() == params.keys()
    for name, tensor in params.items():
        assert (adapted[name] is tensor) == (name not in names), name
    assert not torch.equal(adapted["head.weight"], params["head.weight"])
    assert inner_loop(model, params, sx[0], sy[0], steps=0, lr=0.5, names=names, create_graph=False) == params


def _frozen_body_maml(model: nn.Module, tasks: Tasks, steps: int, lr: float, first_order: bool) -> list[torch.Tensor]:
    """MAML whose inner loop steps only ``head.*`` but runs the whole network functionally every step."""
    theta = dict(model.named_parameters())
    head = [n for n in theta if n.startswith("head.")]
    losses = []
    for sx, sy, qx, qy in zip(*tasks):
        params = dict(theta)
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(model, params, (sx,)), sy)
            grads = torch.autograd.grad(loss, [params[n] for n in head], create_graph=not first_order)
            params.update({n: params[n] - lr * g for n, g in zip(head, grads)})
        losses.append(F.cross_entropy(functional_call(model, params, (qx,)), qy))
    return list(torch.autograd.grad(torch.stack(losses).mean(), list(theta.values())))


@pytest.mark.parametrize("first_order", [False, True])
def test_anil_meta_gradient_equals_frozen_body_maml(first_order: bool) -> None:
    model, tasks = _tiny_conv4(), _tasks()
    grads = _meta_grads(model, tasks, steps=3, lr=0.5, adapt="head", first_order=first_order)
    reference = _frozen_body_maml(model, tasks, steps=3, lr=0.5, first_order=first_order)
    for (name, _), ref in zip(model.named_parameters(), reference):
        torch.testing.assert_close(grads[name], ref, rtol=0, atol=1e-10, msg=name)
    assert grads["features.0.weight"].abs().max() > 0  # the body gets a meta-gradient through the features


def test_anil_second_order_reaches_body_through_inner_loop() -> None:
    model, tasks = _tiny_conv4(), _tasks()
    second = _meta_grads(model, tasks, steps=3, lr=0.5, adapt="head", first_order=False)
    first = _meta_grads(model, tasks, steps=3, lr=0.5, adapt="head", first_order=True)
    assert not torch.allclose(second["features.0.weight"], first["features.0.weight"])


def test_meta_loss_refuses_mismatched_shapes() -> None:
    model, (sx, sy, qx, qy) = _tiny_conv4(), _tasks()
    with pytest.raises(ValueError, match="support_x"):
        meta_loss(model, sx, sy[:, :-1], qx, qy, steps=1, lr=0.1, adapt="all", first_order=True)
    with pytest.raises(ValueError, match="task counts"):
        meta_loss(model, sx, sy, qx[:1], qy[:1], steps=1, lr=0.1, adapt="all", first_order=True)


class _Toy(nn.Module):
    """Smallest backbone with the timm contract: tanh(linear) features and a linear ``head``."""

    def __init__(self, dim: int, ways: int) -> None:
        super().__init__()
        self.body = nn.Linear(dim, 16)
        self.head = nn.Linear(16, ways)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _separable_task(ways: int = 3, dim: int = 8, shots: int = 5, queries: int = 10) -> Tasks:
    g = torch.Generator().manual_seed(3)
    means = 3.0 * torch.eye(ways, dim)
    sy, qy = torch.arange(ways).repeat_interleave(shots), torch.arange(ways).repeat_interleave(queries)
    sx = means[sy] + 0.2 * torch.randn(len(sy), dim, generator=g)
    qx = means[qy] + 0.2 * torch.randn(len(qy), dim, generator=g)
    return sx, sy, qx, qy


@pytest.mark.parametrize("adapt", ["all", "head"])
def test_adapt_and_predict_separates_a_separable_task(adapt: str) -> None:
    torch.manual_seed(0)
    model = _Toy(8, 3)
    sx, sy, qx, qy = _separable_task()
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        unadapted = model(qx).argmax(-1)
    assert (unadapted == qy).float().mean() < 1
    predicted = adapt_and_predict(model, sx, sy, qx, steps=100, lr=1.0, adapt=adapt)
    assert (predicted == qy).float().mean().item() == 1.0
    assert torch.equal(adapt_and_predict(model, sx, sy, qx, steps=0, lr=1.0, adapt=adapt), unadapted)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the model itself is not adapted
    assert all(p.grad is None for p in model.parameters())


def test_adapt_and_predict_under_no_grad_with_conv4() -> None:
    model, (sx, sy, qx, _) = _tiny_conv4(), _tasks()
    with torch.no_grad():
        predicted = adapt_and_predict(model, sx[0], sy[0], qx[0], steps=10, lr=0.1, adapt="all")
    assert predicted.shape == (WAYS * QUERIES,) and predicted.dtype == torch.long

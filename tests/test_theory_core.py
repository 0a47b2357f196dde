"""Theory building blocks against brute-force references (synthetic inputs, small sizes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, jacrev, vjp

from metantk_nas.kernels.metantk import TaskLayout
from metantk_nas.theory.config import TheoryConfig
from metantk_nas.theory.convergence import bound_factor, fit_linear_rate, summarise_convergence
from metantk_nas.theory.kernel_regression import Dynamics, g_function, predict
from metantk_nas.theory.maml import MAML, jacobian_probes, train_maml
from metantk_nas.theory.mlp import NTKMLP, activation_gain
from metantk_nas.theory.tasks import TaskTensors


def _unit(generator: torch.Generator, *shape: int) -> torch.Tensor:
    x = torch.randn(*shape, generator=generator, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def _tasks(n_tasks: int = 3, n: int = 4, m: int = 5, d: int = 10, k: int = 5, seed: int = 0) -> TaskTensors:
    g = torch.Generator().manual_seed(seed)
    query_labels = torch.randint(0, k, (n_tasks, n), generator=g)
    support_labels = torch.randint(0, k, (n_tasks, m), generator=g)
    eye = torch.eye(k, dtype=torch.float64)
    return TaskTensors(_unit(g, n_tasks, n, d), eye[query_labels], query_labels,
                       _unit(g, n_tasks, m, d), eye[support_labels], support_labels)


def _model(width: int, activation: str, d: int = 10, depth: int = 2, k: int = 5) -> NTKMLP:
    return NTKMLP(d, width, depth, k, activation=activation, generator=torch.Generator().manual_seed(1),
                  dtype=torch.float64)


def _jacobian(fn, params) -> torch.Tensor:
    rows = jacrev(lambda p: fn(p).reshape(-1))(params)
    return torch.cat([value.reshape(value.shape[0], -1) for value in rows.values()], dim=1)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_structured_ntk_equals_jacobian_gram(activation):
    model = _model(24, activation)
    x = _unit(torch.Generator().manual_seed(2), 7, 10)
    params = {name: p.detach() for name, p in model.named_parameters()}
    jacobian = _jacobian(lambda p: functional_call(model, p, (x,)), params)
    torch.testing.assert_close(model.ntk(x), jacobian @ jacobian.T, rtol=1e-10, atol=1e-10)


def test_tanh_gain_keeps_unit_variance():
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert activation_gain("tanh") ** 2 * torch.tanh(z).pow(2).mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("steps", [1, 3])
def test_low_rank_inner_loop_matches_autograd_maml(activation, steps):
    """Meta-outputs and the exact second-order meta-gradient equal a plain torch.func MAML."""
    tasks = _tasks()
    maml = MAML(_model(16, activation), steps, 0.3)
    query_offset, support_offset = maml.offsets(tasks)

    def reference(params):
        outputs = []
        for i in range(tasks.n_tasks):
            adapted = params
            for _ in range(steps):
                def loss(p, i=i):
                    return 0.5 * ((maml.apply(p, tasks.support_x[i]) - support_offset[i] - tasks.support_y[i]) ** 2).sum()
                gradient = grad(loss)(adapted)
                adapted = {name: adapted[name] - 0.3 * gradient[name] for name in adapted}
            outputs.append(maml.apply(adapted, tasks.query_x[i]) - query_offset[i])
        return torch.stack(outputs)

    ours, ours_vjp = vjp(maml.meta_output_fn(tasks), maml.params0)
    theirs, theirs_vjp = vjp(reference, maml.params0)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    cotangent = torch.randn(ours.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for name, value in ours_vjp(cotangent)[0].items():
        torch.testing.assert_close(value, theirs_vjp(cotangent)[0][name], rtol=1e-9, atol=1e-12)


def test_meta_ntk_approaches_exact_meta_jacobian_gram_with_width():
    """Lemma 3 at finite width: Phi from the NTK (meta_ntk, inner="steps") ~ J_F J_F^T, closer when wider."""
    tasks = _tasks(n_tasks=2, n=2, m=3, d=6)
    layout = TaskLayout(tasks.n_tasks, tasks.n_query, tasks.n_support, tasks.n_ways)
    x = torch.cat([tasks.query_x.reshape(-1, 6), tasks.support_x.reshape(-1, 6)])
    errors = []
    for width in (8, 2048):
        maml = MAML(_model(width, "tanh", d=6, depth=1), 2, 0.2)
        jacobian = _jacobian(maml.meta_output_fn(tasks), maml.params0)
        exact = (jacobian @ jacobian.T).numpy()
        phi = Dynamics(2, 0.2, "steps").meta_kernel(maml.model.ntk(x).numpy(), layout)
        errors.append(np.linalg.norm(phi - exact) / np.linalg.norm(exact))
    assert errors[1] < 0.1 and errors[1] < errors[0] / 3, errors


def test_g_function_is_the_initial_meta_output_of_a_wide_network():
    """Eq. (13): G equals F_0 of the centred network once the width is large."""
    tasks = _tasks(n_tasks=2, n=2, m=3, d=6)
    layout = TaskLayout(tasks.n_tasks, tasks.n_query, tasks.n_support, tasks.n_ways)
    x = torch.cat([tasks.query_x.reshape(-1, 6), tasks.support_x.reshape(-1, 6)])
    gaps = []
    for width in (8, 4096):
        maml = MAML(_model(width, "tanh", d=6, depth=1), 1, 0.2)
        network = maml.meta_output_fn(tasks)(maml.params0).numpy().ravel()
        g = g_function(maml.model.ntk(x).numpy(), layout, tasks.support_y.numpy(), Dynamics(1, 0.2, "steps"))
        gaps.append(np.linalg.norm(network - g) / np.linalg.norm(g))
    assert gaps[1] < 0.05 and gaps[1] < gaps[0] / 3, gaps


def test_kernel_predictor_limits():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    phi = a @ a.T + 0.5 * np.eye(6)
    g = rng.normal(size=6)
    targets = rng.normal(size=4)
    steps = Dynamics(1, 0.1, "steps")
    eta = 1.0 / np.linalg.eigvalsh(phi[:4, :4])[-1]
    # t = 0: G itself; t = 1: one gradient step on the linear model; t -> inf: the training targets.
    train0, test0 = predict(phi, g, 4, targets, steps, eta, 0)
    np.testing.assert_allclose(train0, g[:4])
    np.testing.assert_allclose(test0, g[4:6])
    train1, _ = predict(phi, g, 4, targets, steps, eta, 1)
    np.testing.assert_allclose(train1, g[:4] + eta * phi[:4, :4] @ (targets - g[:4]))
    train_inf, _ = predict(phi, g, 4, targets, steps, eta, 100_000)
    np.testing.assert_allclose(train_inf, targets, atol=1e-8)
    flow = Dynamics(1, 0.1, "flow")
    np.testing.assert_allclose(flow.outer_filter(np.array([0.0, 1e-3]), 0.5, 4), [2.0, 2.0], rtol=2e-3)


def test_rate_fit_recovers_a_geometric_sequence_and_respects_the_floor():
    losses = 3.0 * 0.9 ** np.arange(50)
    fit = fit_linear_rate(losses)
    assert fit.factor == pytest.approx(0.9) and fit.r2 == pytest.approx(1.0) and fit.stop == 49
    floored = np.concatenate([losses[:20], np.full(30, losses[0] * 1e-13)])
    assert fit_linear_rate(floored).stop == 19
    with pytest.raises(ValueError, match="4 finite"):
        fit_linear_rate(np.array([1.0, np.nan, 0.5, 0.1]))
    summary = summarise_convergence(losses, eta=0.1, eigenvalues=np.array([3.0, 1.0]))
    assert summary["rate_bound"] == pytest.approx(bound_factor(0.1, 1.0)) == pytest.approx((1 - 0.1 / 3) ** 2)
    assert summary["bound_ratio_max"] <= 1.0 and summary["eta_limit"] == pytest.approx(0.5)


def test_train_maml_decays_and_measures_movement():
    tasks = _tasks()
    maml = MAML(_model(64, "tanh"), 1, 0.2)
    rows = tasks.n_tasks * tasks.n_query * tasks.n_ways
    assert torch.equal(jacobian_probes(rows, 0, torch.Generator(), "cpu", torch.float64), torch.eye(rows, dtype=torch.float64))
    probes = jacobian_probes(rows, 4, torch.Generator().manual_seed(5), "cpu", torch.float64)
    assert probes.shape == (4, rows)
    trajectory = train_maml(maml, tasks, 0.05, 20, [0, 10, 20], probes)
    assert not trajectory.diverged and trajectory.losses[-1] < 0.5 * trajectory.losses[0]
    assert trajectory.checkpoints == [0, 10, 20] and trajectory.param_movement[0] == 0.0
    assert 0 < trajectory.param_movement[1] < trajectory.param_movement[2]
    assert all(value > 0 for value in trajectory.jacobian_movement[1:])
    diverging = train_maml(maml, tasks, 50.0, 20, [0], probes)
    assert diverging.diverged and len(diverging.losses) < 21


def test_config_precedence_and_errors(tmp_path):
    from metantk_nas.cli import build_parser

    def load(*flags: str) -> TheoryConfig:
        return TheoryConfig.from_args(build_parser().parse_args(["theory", "--dataset", "d", "--out", "o", *flags]))

    path = tmp_path / "theory.yaml"
    path.write_text("widths: [16, 32]\nsteps: 7\n")
    config = load("--config", str(path), "--steps", "9")
    assert config.widths == (16, 32) and config.steps == 9 and config.seed == 0
    assert config.checkpoint_steps == [0, 4, 9] or config.checkpoint_steps == [0, 5, 9]
    path.write_text("widht: [16]\n")
    with pytest.raises(ValueError, match=r"theory\.yaml: unknown key\(s\) \['widht'\]"):
        load("--config", str(path))
    with pytest.raises(ValueError, match="outer_lr"):
        load("--outer-lr", "1.5")
    with pytest.raises(ValueError, match="increasing"):
        load("--widths", "64", "16")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load("--config", str(tmp_path / "missing.yaml"))

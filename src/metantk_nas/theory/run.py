"""One theory run: for every width, train MAML and compare it with Theorems 1 and 2.

Per width ``l``: draw the network (seed ``derive_seed(seed, "theory-init", l)``), compute its empirical
NTK at initialisation over the training and held-out tasks, the MetaNTK ``Phi`` from it (``inner="steps"``
with the same ``k`` steps of rate ``lambda`` as the network's inner loop: exact for the linearised network),
pick ``lambda`` and ``eta`` from those kernels, train, then evaluate the rate (Theorem 1) and the
kernel-regression gap (Theorem 2).

Precision: training in float32 and kernels in float64 on any device; no autocast/bf16, because the measured
gaps go down to ~1e-3 and bf16's 8-bit mantissa would swamp them. On CUDA the whole run stays on the GPU
except the small kernel algebra (numpy, float64).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metantk_nas.kernels.metantk import TaskLayout
from metantk_nas.seeding import derive_seed, seed_everything
from metantk_nas.theory.config import TheoryConfig
from metantk_nas.theory.convergence import bound_curve, summarise_convergence
from metantk_nas.theory.kernel_regression import Dynamics, accuracy, g_function, predict, relative_gap
from metantk_nas.theory.maml import MAML, jacobian_probes, train_maml
from metantk_nas.theory.mlp import NTKMLP
from metantk_nas.theory.tasks import TaskTensors, load_tasks


def _log(message: str) -> None:
    print(f"[theory] {message}", file=sys.stderr, flush=True)


def load_theory_tasks(config: TheoryConfig, dataset_dir: str | Path) -> tuple[TaskTensors, TaskTensors]:
    """Training tasks from the TRAIN classes and held-out tasks from the TEST classes."""
    common = {"ways": config.ways, "shots": config.shots, "queries": config.queries, "image_size": config.image_size}
    train = load_tasks(dataset_dir, "train", config.tasks, seed=derive_seed(config.seed, "theory-train-tasks"), **common)
    test = load_tasks(dataset_dir, "test", config.test_tasks, seed=derive_seed(config.seed, "theory-test-tasks"),
                      **common)
    return train, test


def _kernel_inputs(tasks: TaskTensors) -> torch.Tensor:
    """Kernel rows in the MetaNTK layout order: every query (task-major), then every support."""
    d = tasks.in_features
    return torch.cat([tasks.query_x.reshape(-1, d), tasks.support_x.reshape(-1, d)]).to(torch.float64)


def _kernel_regression(phi: np.ndarray, g: np.ndarray, train_rows: int, train: TaskTensors, test: TaskTensors,
                       dynamics: Dynamics, eta: float, steps: int, net_train: np.ndarray,
                       net_test: np.ndarray) -> dict[str, float]:
    kernel_train, kernel_test = predict(phi, g, train_rows, train.query_y.cpu().numpy(), dynamics, eta, steps)
    test_labels = test.query_labels.cpu().numpy()
    return {
        "gap_test": relative_gap(net_test, kernel_test),
        "gap_train": relative_gap(net_train, kernel_train),
        "accuracy_kernel": accuracy(kernel_test, test_labels),
        "agreement": float((net_test.reshape(-1, test.n_ways).argmax(-1)
                            == kernel_test.reshape(-1, test.n_ways).argmax(-1)).mean()),
    }


def run_width(config: TheoryConfig, width: int, train: TaskTensors, test: TaskTensors, device: torch.device,
              log: Callable[[str], None] = _log) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Measure one width. Returns the record for ``theory.json`` and the per-step curves for the CSV."""
    timer = time.perf_counter()
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "theory-init", width))
    model = NTKMLP(train.in_features, width, config.depth, config.ways, activation=config.activation,
                   generator=generator).to(device)
    everything = train.concat(test)
    layout = TaskLayout(everything.n_tasks, everything.n_query, everything.n_support, config.ways)
    theta = model.ntk(_kernel_inputs(everything).to(device)).cpu().numpy()
    train_rows = train.n_tasks * train.n_query * config.ways
    support_blocks = [theta[np.ix_(layout.support_rows(i), layout.support_rows(i))] for i in range(train.n_tasks)]
    lam_max = max(float(np.linalg.eigvalsh(block)[-1]) for block in support_blocks)
    lam = config.inner_lr / lam_max
    dynamics = Dynamics(config.inner_steps, lam, "steps")
    phi = dynamics.meta_kernel(theta, layout)
    eigenvalues = np.linalg.eigvalsh(phi[:train_rows, :train_rows])
    eta = config.outer_lr * 2.0 / (eigenvalues[0] + eigenvalues[-1])
    kernel_seconds = time.perf_counter() - timer
    log(f"width {width}: lambda {lam:.4g}, eta {eta:.4g}, sigma(Phi) [{eigenvalues[0]:.4g}, {eigenvalues[-1]:.4g}]")

    maml = MAML(model, config.inner_steps, lam)
    probe_generator = torch.Generator().manual_seed(derive_seed(config.seed, "theory-probes"))
    probes = jacobian_probes(train_rows, config.jacobian_probes, probe_generator, device, torch.float32)
    timer = time.perf_counter()
    trajectory = train_maml(maml, train.to(device), eta, config.steps, config.checkpoint_steps, probes,
                            log=lambda message: log(f"width {width}: {message}"))
    train_seconds = time.perf_counter() - timer
    record: dict[str, Any] = {
        "width": width,
        "parameters": sum(p.numel() for p in model.parameters()),
        "inner_lr_absolute": lam,
        "support_lambda_max": lam_max,
        "outer_lr_absolute": eta,
        "phi_eigenvalues": eigenvalues,
        "diverged": trajectory.diverged,
        "steps_run": len(trajectory.losses) - 1,
        "checkpoints": trajectory.checkpoints,
        "param_movement": trajectory.param_movement,
        "jacobian_movement": trajectory.jacobian_movement,
        "jacobian_probes": int(probes.shape[0]) if config.jacobian_probes else 0,
    }
    curves = {"loss": trajectory.losses, "bound": bound_curve(trajectory.losses, eta, float(eigenvalues[0]))}
    if trajectory.diverged:
        log(f"width {width}: diverged after {record['steps_run']} steps; no rate or kernel comparison")
        record["seconds"] = {"kernels": kernel_seconds, "training": train_seconds}
        return record, curves
    record["convergence"] = summarise_convergence(trajectory.losses, eta, eigenvalues)

    timer = time.perf_counter()
    with torch.no_grad():
        net_train = maml.meta_output_fn(train.to(device))(trajectory.params).double().cpu().numpy().ravel()
        net_test = maml.meta_output_fn(test.to(device))(trajectory.params).double().cpu().numpy().ravel()
    support_targets = everything.support_y.cpu().numpy()
    steps_run = record["steps_run"]
    regression = _kernel_regression(phi, g_function(theta, layout, support_targets, dynamics), train_rows,
                                    train, test, dynamics, eta, steps_run, net_train, net_test)
    flow = Dynamics(config.inner_steps, lam, "flow")
    regression_flow = _kernel_regression(flow.meta_kernel(theta, layout),
                                         g_function(theta, layout, support_targets, flow), train_rows,
                                         train, test, flow, eta, steps_run, net_train, net_test)
    regression["gap_test_flow"] = regression_flow["gap_test"]
    regression["accuracy_kernel_flow"] = regression_flow["accuracy_kernel"]
    regression["accuracy_maml"] = accuracy(net_test, test.query_labels.cpu().numpy())
    record["kernel_regression"] = regression
    record["seconds"] = {"kernels": kernel_seconds, "training": train_seconds,
                         "evaluation": time.perf_counter() - timer}
    log(f"width {width}: loss {trajectory.losses[0]:.3e} -> {trajectory.losses[-1]:.3e}, "
        f"rate {record['convergence']['rate_fitted']:.4f} (bound {record['convergence']['rate_bound']:.4f}), "
        f"gap {regression['gap_test']:.3e}, accuracy MAML {regression['accuracy_maml']:.3f} "
        f"kernel {regression['accuracy_kernel']:.3f}")
    return record, curves


def run_theory(config: TheoryConfig, dataset_dir: str | Path, device: torch.device,
               log: Callable[[str], None] = _log) -> tuple[list[dict[str, Any]], dict[int, dict[str, np.ndarray]]]:
    """Every width of ``config``: records and per-step curves keyed by width."""
    seed_everything(config.seed)
    train, test = load_theory_tasks(config, dataset_dir)
    log(f"{train.n_tasks} training tasks, {test.n_tasks} held-out tasks, input dimension {train.in_features}")
    records, curves = [], {}
    for width in config.widths:
        record, curve = run_width(config, width, train, test, device, log)
        records.append(record)
        curves[width] = curve
    return records, curves

"""MAML with the square loss and an exact meta-gradient (Paper Algorithm 1, Eq. 1-3).

The meta-output of task ``(X, X', Y')`` is ``F_theta = f_{theta_k}(X)`` with
``theta_{s+1} = theta_s - lambda grad ½||f_{theta_s}(X') - Y'||²``, ``theta_0 = theta`` (k inner steps).
The outer loop is full-batch gradient descent ``theta <- theta - eta J^T (F - Y)`` on the loss of
Eq. (2), ``½ sum_i ||F_theta(X_i, X'_i, Y'_i) - Y_i||²`` (a sum over tasks, not a mean).

The inner gradient of a layer ``h = c W z`` over ``m`` supports is ``c Delta^T Z`` (rank <= m), so an adapted
weight is ``W - lambda c sum_s Delta_s^T Z_s`` and is applied as ``c z W^T - lambda c² sum_s (z Z_s^T) Delta_s``:
no per-task copy of the ``D`` parameters is formed. The inner backward pass is written out with these
low-rank factors and the outer derivative is taken by :func:`torch.func.vjp` through it, so the meta-gradient
is exact, Hessian terms of Eq. (3) included (``phi'(h)`` is itself differentiated; for ReLU that derivative is
zero almost everywhere, as in autograd).

Centring (the paper's Assumption 5, ``f_0 ≈ 0``): the network output is ``f_theta(x) - f_{theta_init}(x)``.
This leaves every Jacobian, and so the NTK and MetaNTK, unchanged while making ``f_0 = 0`` exactly,
which is what Theorem 2's closed form (Eq. 12-13, no ``f_0`` terms) assumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, vjp, vmap

from metantk_nas.theory.mlp import NTKMLP, activate, activation_derivative
from metantk_nas.theory.tasks import TaskTensors

Params = dict[str, torch.Tensor]
#: Low-rank inner-loop updates of one layer: pairs ``(Z, Delta)`` meaning ``W <- W - lambda c Delta^T Z``.
Corrections = list[tuple[torch.Tensor, torch.Tensor]]


def flat_norm(params: Params) -> float:
    """Euclidean norm of all parameters together."""
    return float(torch.sqrt(sum((p.double() ** 2).sum() for p in params.values())))


def flat_distance(a: Params, b: Params) -> float:
    """``||a - b||`` over all parameters together."""
    return float(torch.sqrt(sum(((a[name] - b[name]).double() ** 2).sum() for name in a)))


def _layer(z: torch.Tensor, weight: torch.Tensor, scale: float, corrections: Corrections, lam: float) -> torch.Tensor:
    """``scale * z W'^T`` for the adapted weight ``W'`` (batched over tasks: ``z`` is ``(N, b, in)``)."""
    h = scale * (z.reshape(-1, z.shape[-1]) @ weight.T).reshape(*z.shape[:-1], weight.shape[0])
    for inputs, deltas in corrections:
        h = h - (lam * scale**2) * ((z @ inputs.transpose(1, 2)) @ deltas)
    return h


def _layer_backward(delta: torch.Tensor, weight: torch.Tensor, scale: float, corrections: Corrections,
                    lam: float) -> torch.Tensor:
    """``delta (scale W')``: the back-propagated error through the adapted weight."""
    back = scale * (delta.reshape(-1, delta.shape[-1]) @ weight).reshape(*delta.shape[:-1], weight.shape[1])
    for inputs, deltas in corrections:
        back = back - (lam * scale**2) * ((delta @ deltas.transpose(1, 2)) @ inputs)
    return back


@dataclass
class MAML:
    """The meta-output map ``theta -> F_theta`` of a centred :class:`NTKMLP`, for fixed inner-loop settings."""

    model: NTKMLP
    inner_steps: int
    inner_lr: float

    def __post_init__(self) -> None:
        if self.inner_steps < 1 or not self.inner_lr > 0:
            raise ValueError(f"need inner_steps >= 1 and inner_lr > 0, got {self.inner_steps}, {self.inner_lr}")
        self.params0: Params = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self._names = [name for name, _ in self.model.named_parameters()]

    def apply(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """The raw network ``f_params(x)`` (not centred, not adapted)."""
        return functional_call(self.model, params, (x,))

    @torch.no_grad()
    def offsets(self, tasks: TaskTensors) -> tuple[torch.Tensor, torch.Tensor]:
        """``f_{theta_init}`` on the queries and supports: subtracted to centre the network."""
        return self.apply(self.params0, tasks.query_x), self.apply(self.params0, tasks.support_x)

    def _forward(self, weights: list[torch.Tensor], x: torch.Tensor, corrections: list[Corrections]):
        """Adapted forward pass keeping each layer's input and ``phi'(h)`` for the inner backward pass."""
        inputs, derivatives, z = [], [], x
        last = len(weights) - 1
        for index, (weight, scale) in enumerate(zip(weights, self.model.multipliers)):
            inputs.append(z)
            z = _layer(z, weight, scale, corrections[index], self.inner_lr)
            if index < last:
                derivatives.append(activation_derivative(self.model.activation, z))
                z = activate(self.model.activation, z)
        return z, inputs, derivatives

    def meta_output_fn(self, tasks: TaskTensors) -> Callable[[Params], torch.Tensor]:
        """``theta -> F_theta`` over all tasks, shape ``(N, n, k)``."""
        query_offset, support_offset = self.offsets(tasks)

        def meta_output(params: Params) -> torch.Tensor:
            weights = [params[name] for name in self._names]
            corrections: list[Corrections] = [[] for _ in weights]
            for _ in range(self.inner_steps):
                outputs, inputs, derivatives = self._forward(weights, tasks.support_x, corrections)
                delta = outputs - support_offset - tasks.support_y  # d(½||r||²)/d output
                updates = [None] * len(weights)
                for index in range(len(weights) - 1, -1, -1):
                    updates[index] = (inputs[index], delta)
                    if index > 0:
                        scale = self.model.multipliers[index]
                        delta = _layer_backward(delta, weights[index], scale, corrections[index], self.inner_lr)
                        delta = delta * derivatives[index - 1]
                for index, update in enumerate(updates):
                    corrections[index] = corrections[index] + [update]
            outputs, _, _ = self._forward(weights, tasks.query_x, corrections)
            return outputs - query_offset

        return meta_output


@dataclass
class Trajectory:
    """What one MAML run measured: the loss at every step and the movement at checkpoints."""

    losses: np.ndarray  # (steps_run + 1,) meta-training loss L(theta_t), t = 0..steps_run
    checkpoints: list[int]
    param_movement: list[float]  # ||theta_t - theta_0|| / ||theta_0||
    jacobian_movement: list[float]  # ||J_t - J_0||_F / ||J_0||_F (exact or probed, see jacobian_probes)
    diverged: bool
    params: Params  # theta at the last step


def jacobian_probes(n_rows: int, n_probes: int, generator: torch.Generator,
                    device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cotangents ``U`` with ``E ||A^T U||_F² = ||A||_F²``: the identity (exact) or Gaussian columns / sqrt(m).

    ``n_probes = 0`` or ``>= n_rows`` gives the identity, i.e. the exact Frobenius norm over all rows;
    otherwise a Hutchinson estimate with ``n_probes`` Gaussian probes.
    """
    if n_probes == 0 or n_probes >= n_rows:
        return torch.eye(n_rows, dtype=dtype, device=device)
    gaussian = torch.randn(n_probes, n_rows, generator=generator, dtype=torch.float64) / np.sqrt(n_probes)
    return gaussian.to(device, dtype)


def train_maml(maml: MAML, tasks: TaskTensors, outer_lr: float, steps: int, checkpoints: list[int],
               probes: torch.Tensor, probe_chunk: int = 8, divergence_factor: float = 1e6,
               log: Callable[[str], None] | None = None) -> Trajectory:
    """Full-batch gradient descent on the MAML loss for ``steps`` steps from ``maml.params0``.

    At each checkpoint ``t`` (``0 <= t <= steps``) records the relative parameter movement and the
    relative Jacobian movement of the meta-output over the training tasks, ``J = dF/dtheta``,
    measured through the probe cotangents ``probes`` (rows of ``U``: ``||(J_t - J_0)^T U^T||``).
    Stops early (``diverged=True``) when the loss is non-finite or grows ``divergence_factor``-fold.
    """
    if steps < 1 or not outer_lr > 0:
        raise ValueError(f"need steps >= 1 and outer_lr > 0, got {steps}, {outer_lr}")
    if any(not 0 <= t <= steps for t in checkpoints):
        raise ValueError(f"checkpoints must lie in [0, {steps}], got {checkpoints}")
    meta_output = maml.meta_output_fn(tasks)
    targets = tasks.query_y
    params0 = maml.params0
    norm0 = flat_norm(params0)
    wanted = set(checkpoints)
    params = {name: p.clone() for name, p in params0.items()}
    losses: list[float] = []
    recorded: list[int] = []
    param_movement: list[float] = []
    jacobian_movement: list[float] = []
    diverged = False
    for t in range(steps + 1):
        outputs, vjp_t = vjp(meta_output, params)
        residual = outputs - targets
        loss = 0.5 * float((residual.double() ** 2).sum())
        losses.append(loss)
        if not np.isfinite(loss) or loss > divergence_factor * losses[0]:
            diverged = True
            break
        if t in wanted:
            recorded.append(t)
            param_movement.append(flat_distance(params, params0) / norm0)
            jacobian_movement.append(
                0.0 if t == 0 else _jacobian_movement(meta_output, vjp_t, params0, probes, probe_chunk))
            if log:
                log(f"step {t}: loss {loss:.3e}, param movement {param_movement[-1]:.3e}, "
                    f"jacobian movement {jacobian_movement[-1]:.3e}")
        if t == steps:
            break
        (gradient,) = vjp_t(residual)
        params = {name: params[name] - outer_lr * gradient[name] for name in params}
    return Trajectory(np.asarray(losses), recorded, param_movement, jacobian_movement, diverged, params)


def _jacobian_movement(meta_output: Callable, vjp_t: Callable, params0: Params, probes: torch.Tensor,
                       chunk: int) -> float:
    """``||(J_t - J_0)^T U|| / ||J_0^T U||``; ``J_0`` is re-linearised here rather than kept in memory."""
    outputs0, vjp0 = vjp(meta_output, params0)
    moved, initial = 0.0, 0.0
    for start in range(0, probes.shape[0], chunk):
        block = probes[start:start + chunk].reshape(-1, *outputs0.shape)
        (now,) = vmap(vjp_t)(block)
        (then,) = vmap(vjp0)(block)
        moved += sum(float(((now[n] - then[n]).double() ** 2).sum()) for n in now)
        initial += sum(float((then[n].double() ** 2).sum()) for n in then)
    return float(np.sqrt(moved / initial))

"""Theorem 2 at finite width: the analytical MetaNTK from the empirical NTK matches J Jᵀ of the meta-output."""

import numpy as np
import pytest
import torch
from _kernels_helpers import NTKMLP, direct_meta_ntk

from metantk_nas.kernels import TaskLayout, empirical_ntk, meta_ntk

LAM, STEPS = 0.5, 2

pytestmark = pytest.mark.usefixtures("one_thread")


def _relative_error(width: int) -> float:
    g = torch.Generator().manual_seed(0)
    n_tasks, n_query, n_support, d = 2, 3, 3, 5
    x = torch.randn(n_tasks * (n_query + n_support), d, generator=g)
    x = x / x.norm(dim=1, keepdim=True)  # unit-norm inputs
    query = x[: n_tasks * n_query].view(n_tasks, n_query, d)
    support = x[n_tasks * n_query :].view(n_tasks, n_support, d)
    targets = torch.randn(n_tasks, n_support, generator=g)
    model = NTKMLP(d, width, generator=torch.Generator().manual_seed(1))
    direct = direct_meta_ntk(model, query, support, targets, LAM, STEPS).numpy()
    theta = empirical_ntk(model, x, backend="func").theta
    analytic = meta_ntk(theta, None, TaskLayout(n_tasks, n_query, n_support), inner="steps", lam=LAM, steps=STEPS)
    return float(np.linalg.norm(direct - analytic) / np.linalg.norm(analytic))


def test_metantk_converges_with_width():
    errors = [_relative_error(width) for width in (64, 512, 2048)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.01, errors

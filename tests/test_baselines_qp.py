"""The differentiable QP layer: KKT conditions, an independent solver (scipy), closed forms, and gradients."""

import numpy as np
import pytest
import scipy.optimize
import torch

from metantk_nas.baselines.qp import interior_point, solve_qp

pytestmark = pytest.mark.usefixtures("one_thread")


def random_problem(batch, n, m, k, seed=0):
    """Q positive definite; a point z0 strictly inside Gz ≤ h (margins 0.1..1) on Az = b; p large enough for
    the unconstrained minimiser to violate constraints, so that some are active at the solution."""
    g = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    L = randn(batch, n, n)
    Q = L @ L.transpose(1, 2) / n + 0.1 * torch.eye(n, dtype=torch.float64)
    z0, G, A = randn(batch, n, 1), randn(batch, m, n), randn(batch, k, n)
    h = (G @ z0).squeeze(-1) + 0.1 + 0.9 * torch.rand(batch, m, generator=g, dtype=torch.float64)
    return Q, 3 * randn(batch, n), G, h, A, (A @ z0).squeeze(-1)


def kkt_violations(Q, p, G, h, A, b, z, lam, nu):
    """Largest violation of stationarity, primal feasibility (both kinds), dual feasibility, complementarity."""
    mv = lambda M, v: (M @ v.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    slack = h - mv(G, z)
    return {
        "stationarity": mv(Q, z).add(p).add(mv(G.transpose(1, 2), lam)).add(mv(A.transpose(1, 2), nu)).abs().max(),
        "inequalities": (-slack).clamp(min=0).max(),
        "equalities": (mv(A, z) - b).abs().max(),
        "dual feasibility": (-lam).clamp(min=0).max(),
        "complementarity": (lam * slack).abs().max(),
    }


def test_batched_solution_satisfies_the_kkt_conditions():
    problem = random_problem(6, 12, 30, 3)
    result = interior_point(*problem)
    assert bool(result.converged.all()) and result.iterations <= 20, (result.residual, result.iterations)
    violations = kkt_violations(*problem, result.z, result.lam, result.nu)
    assert all(v <= 1e-6 for v in violations.values()), violations
    assert ((problem[3] - (problem[2] @ result.z.unsqueeze(-1)).squeeze(-1)) < 1e-6).sum(-1).min() >= 2
    torch.testing.assert_close(solve_qp(*problem), result.z, rtol=0, atol=1e-12)


def test_unbatched_and_shared_inputs_match_the_batched_solve():
    Q, p, G, h, A, b = random_problem(3, 6, 10, 2, seed=1)
    batched = solve_qp(Q, p, G, h, A, b)
    single = solve_qp(Q[1], p[1], G[1], h[1], A[1], b[1])
    assert single.shape == (6,)
    torch.testing.assert_close(single, batched[1], rtol=0, atol=1e-10)
    result = interior_point(Q[1:2], p[1:2], G[1:2], h[1:2], A[1:2], b[1:2])
    assert all(v <= 1e-6 for v in kkt_violations(Q[1:2], p[1:2], G[1:2], h[1:2], A[1:2], b[1:2], single[None],
                                                  result.lam, result.nu).values())
    # constraints shared by the batch (no batch dimension), float32 in and out (solved in float64)
    shared = solve_qp(Q.float(), p.float(), G[0].float(), h[0].float(), A[0].float(), b[0].float())
    expected = solve_qp(Q, p, G[0].expand(3, -1, -1), h[0].expand(3, -1), A[0].expand(3, -1, -1), b[0].expand(3, -1))
    assert shared.dtype == torch.float32 and shared.shape == (3, 6)
    torch.testing.assert_close(shared, expected.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_slsqp(seed):
    Q, p, G, h, A, b = (t[0].numpy() for t in random_problem(1, 5, 8, 2, seed=seed))
    reference = scipy.optimize.minimize(
        lambda z: 0.5 * z @ Q @ z + p @ z, np.zeros(5), jac=lambda z: Q @ z + p, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda z: h - G @ z, "jac": lambda z: -G},
                     {"type": "eq", "fun": lambda z: A @ z - b, "jac": lambda z: A}],
        options={"ftol": 1e-12, "maxiter": 1000})
    assert reference.success, reference.message
    ours = solve_qp(*(torch.from_numpy(t) for t in (Q, p, G, h, A, b)))
    np.testing.assert_allclose(ours.numpy(), reference.x, rtol=0, atol=1e-5)


def test_unconstrained_is_minus_q_inverse_p():
    Q, p, _, _, _, _ = random_problem(4, 7, 1, 1, seed=3)
    result = interior_point(Q, p, Q.new_zeros(4, 0, 7), Q.new_zeros(4, 0), Q.new_zeros(4, 0, 7), Q.new_zeros(4, 0))
    assert result.iterations == 0 and bool(result.converged.all())
    expected = -torch.linalg.solve(Q, p)
    torch.testing.assert_close(result.z, expected, rtol=1e-12, atol=1e-12)
    z = solve_qp(Q, p, Q.new_zeros(0, 7), Q.new_zeros(0), Q.new_zeros(0, 7), Q.new_zeros(0))
    torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)


def test_equality_only_is_the_kkt_solve():
    Q, p, _, _, A, b = random_problem(3, 6, 1, 2, seed=4)
    z = solve_qp(Q, p, Q.new_zeros(0, 6), Q.new_zeros(0), A, b)
    kkt = torch.cat([torch.cat([Q, A.transpose(1, 2)], -1), torch.cat([A, Q.new_zeros(3, 2, 2)], -1)], -2)
    expected = torch.linalg.solve(kkt, torch.cat([-p, b], -1))[:, :6]
    torch.testing.assert_close(z, expected, rtol=1e-10, atol=1e-10)


def test_unconverged_solve_says_so():
    result = interior_point(*random_problem(2, 12, 30, 3), max_iter=2)
    assert result.iterations == 2 and not bool(result.converged.any()) and bool((result.residual > 1e-10).all())


def test_gradients_of_all_inputs_pass_gradcheck():
    problem = random_problem(2, 4, 6, 1, seed=3)
    result = interior_point(*problem, tol=1e-13, max_iter=50)
    # implicit differentiation assumes strict complementarity: every constraint has s or λ clearly positive
    assert torch.maximum(result.s, result.lam).min() > 1e-2
    assert 0 < int((result.s < 1e-8).sum()) < 12  # some constraints active, some not
    inputs = [t.clone().requires_grad_() for t in problem]
    assert torch.autograd.gradcheck(lambda *a: solve_qp(*a, tol=1e-13, max_iter=50), inputs, eps=1e-6, atol=1e-6,
                                    rtol=1e-4)


def test_batched_solve_on_two_threads_returns(tmp_path):
    """torch's batched CPU LAPACK path hung with 2 OpenMP threads (oneMKL DLASWP error); the solver must not."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "from metantk_nas.baselines.svm import svm_cs_logits\n"
        "g = torch.Generator().manual_seed(0)\n"
        "support = torch.randn(4, 25, 16, generator=g, requires_grad=True)\n"
        "labels = torch.arange(5).repeat_interleave(5).expand(4, 25)\n"
        "logits = svm_cs_logits(torch.randn(4, 30, 16, generator=g), support, labels, 5)\n"
        "logits.sum().backward()\n"
        "assert torch.isfinite(support.grad).all()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
    assert "DLASWP" not in result.stderr

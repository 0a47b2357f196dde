"""MetaNTK assembly (Eq. 106/112, official §2.4) and the condition number (official §2.5)."""

import math

import numpy as np
import pytest
import scipy.linalg

from metantk_nas.kernels import DEGENERATE_CONDITION, TaskLayout, condition_number, meta_ntk
from metantk_nas.kernels.metantk import inner_operator


def _random_kernel(n: int, rank: int, seed: int) -> np.ndarray:
    features = np.random.default_rng(seed).normal(size=(n, rank))
    return features @ features.T


def test_layout_official_order_and_logits_rows():
    layout = TaskLayout(3, 5, 5)
    assert layout.query_rows(1).tolist() == [5, 6, 7, 8, 9]
    assert layout.support_rows(0).tolist() == [15, 16, 17, 18, 19]
    logits = TaskLayout(2, 1, 2, n_outputs=3)
    assert logits.query_rows(1).tolist() == [3, 4, 5]
    assert logits.support_rows(1).tolist() == [12, 13, 14, 15, 16, 17]
    with pytest.raises(ValueError, match="n_query"):
        TaskLayout(3, 0, 5)


def test_infinite_time_tiny_reg_gives_schur_complement():
    layout = TaskLayout(3, 5, 5)
    theta = _random_kernel(30, 60, 0)
    phi = meta_ntk(theta, None, layout, lam_tau=math.inf, reg=1e-12)
    for i in range(3):
        q, s = layout.query_rows(i), layout.support_rows(i)
        schur = theta[np.ix_(q, q)] - theta[np.ix_(q, s)] @ np.linalg.solve(theta[np.ix_(s, s)], theta[np.ix_(s, q)])
        block = phi[5 * i : 5 * i + 5, 5 * i : 5 * i + 5]
        np.testing.assert_allclose(block, schur, rtol=1e-6, atol=1e-8 * np.abs(theta).max())


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
@pytest.mark.parametrize("lam_tau", [math.inf, 1.0, 0.05])
def test_phi_symmetric_psd(algorithm, lam_tau):
    layout = TaskLayout(3, 5, 5)
    theta = _random_kernel(30, 40, 1)
    last = _random_kernel(30, 8, 2)
    k = last if algorithm == "anil" else None
    phi = meta_ntk(theta + 0.0, k, layout, lam_tau=lam_tau, reg=1e-3, algorithm=algorithm)
    assert phi.shape == (15, 15)
    np.testing.assert_allclose(phi, phi.T, atol=1e-9 * np.abs(phi).max())
    if algorithm == "maml":  # Φ = JJᵀ of the linearised meta-output: PSD
        assert np.linalg.eigvalsh(phi)[0] > -1e-8 * np.abs(phi).max()


def test_anil_psd_when_last_layer_kernel_is_part_of_theta():
    # Θ = 𝒦 + backbone part, as the empirical kernels are: Φ is then a Gram matrix too.
    layout = TaskLayout(3, 5, 5)
    last = _random_kernel(30, 8, 3)
    phi = meta_ntk(last + _random_kernel(30, 40, 4), last, layout, lam_tau=1.0, reg=1e-5, algorithm="anil")
    assert np.linalg.eigvalsh(phi)[0] > -1e-8 * np.abs(phi).max()


def test_flow_operator_official_formula_and_steps_sum():
    a = _random_kernel(5, 10, 5) / 10
    expected = scipy.linalg.pinvh(a + 1e-3 * np.eye(5)) @ (np.eye(5) - scipy.linalg.expm(-2.0 * a))
    np.testing.assert_allclose(inner_operator(a, lam_tau=2.0, reg=1e-3), expected)
    np.testing.assert_allclose(inner_operator(a, lam_tau=1000.0), scipy.linalg.pinvh(a + 1e-3 * np.eye(5)))
    two = inner_operator(a, inner="steps", lam=0.1, steps=2)
    np.testing.assert_allclose(two, 0.1 * np.eye(5) + 0.1 * (np.eye(5) - 0.1 * a))
    with pytest.raises(ValueError, match="lam"):
        inner_operator(a, inner="steps")


def test_logits_layout_of_kronecker_kernel_is_kronecker_of_scalar_phi():
    # For Θ ⊗ I_k (the infinite-width form) the per-logit MetaNTK is Φ_scalar ⊗ I_k.
    theta = _random_kernel(12, 20, 6)
    scalar = meta_ntk(theta, None, TaskLayout(2, 3, 3), lam_tau=0.5)
    logits = meta_ntk(np.kron(theta, np.eye(4)), None, TaskLayout(2, 3, 3, n_outputs=4), lam_tau=0.5)
    np.testing.assert_allclose(logits, np.kron(scalar, np.eye(4)), atol=1e-10 * np.abs(scalar).max())


def test_meta_ntk_rejects_bad_input():
    layout = TaskLayout(3, 5, 5)
    theta = _random_kernel(30, 40, 7)
    with pytest.raises(ValueError, match="expects"):
        meta_ntk(theta[:20, :20], None, layout)
    with pytest.raises(ValueError, match="anil"):
        meta_ntk(theta, None, layout, algorithm="anil")
    with pytest.raises(ValueError, match="algorithm"):
        meta_ntk(theta, None, layout, algorithm="reptile")
    # MAML's inner loop uses Θ whatever k is passed (the official K is Θ).
    np.testing.assert_array_equal(meta_ntk(theta, theta * 2, layout), meta_ntk(theta, None, layout))


def test_condition_number_signed_and_degenerate():
    c = condition_number(np.diag([2.0, 8.0, 4.0]))
    assert c.value == pytest.approx(4.0) and c.eigenvalues.tolist() == [2.0, 4.0, 8.0]
    signed = condition_number(np.diag([-1.0, 3.0]))
    assert signed.value == pytest.approx(-3.0) and signed.negatives == 1
    assert condition_number(np.zeros((3, 3))).value == DEGENERATE_CONDITION  # 0/0 = NaN → 1e5
    assert condition_number(np.full((2, 2), np.nan)).value == DEGENERATE_CONDITION
    with pytest.raises(ValueError, match="square"):
        condition_number(np.ones((2, 3)))

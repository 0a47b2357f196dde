"""The MetaOptNet-SVM head: the Crammer–Singer dual's constraints, an independent solve, strong duality
(which checks the derivation in the module docstring), separable data, and gradients to the embeddings."""

import numpy as np
import pytest
import scipy.optimize
import torch

from metantk_nas.baselines.qp import interior_point
from metantk_nas.baselines.svm import SVMHead, _crammer_singer_qp, svm_cs_dual, svm_cs_logits

pytestmark = pytest.mark.usefixtures("one_thread")


def episodes(tasks, n_way, shot, queries, dim, spread=1.0, noise=1.0, seed=0):
    """Gaussian classes around random centres; float64 (query, support, support_labels, query_labels)."""
    g = torch.Generator().manual_seed(seed)
    centres = spread * torch.randn(tasks, n_way, dim, generator=g, dtype=torch.float64)
    support_labels = torch.arange(n_way).repeat_interleave(shot).expand(tasks, -1).contiguous()
    query_labels = torch.arange(n_way).repeat_interleave(queries).expand(tasks, -1).contiguous()

    def draw(labels):
        noise_ = noise * torch.randn(tasks, labels.shape[1], dim, generator=g, dtype=torch.float64)
        return torch.gather(centres, 1, labels[..., None].expand(-1, -1, dim)) + noise_

    return draw(query_labels), draw(support_labels), support_labels, query_labels


def crammer_singer_primal(W, support, labels, C):
    """½‖W‖² + C Σ_i max(0, max_k (1 − δ_{k,y_i} + w_k·x_i − w_{y_i}·x_i)) per task; W (T, n_way, d)."""
    scores = support @ W.transpose(1, 2)
    n_way = W.shape[1]
    margin = 1 - torch.nn.functional.one_hot(labels, n_way) + scores - scores.gather(-1, labels[..., None])
    return 0.5 * W.pow(2).sum((1, 2)) + C * margin.amax(-1).clamp(min=0).sum(-1)


def test_separable_supports_are_classified_correctly():
    query, support, labels, query_labels = episodes(3, 5, 3, 4, 20, spread=3.0, noise=0.3)
    support_logits = svm_cs_logits(support, support, labels, 5)
    assert (support_logits.argmax(-1) == labels).all()
    assert (svm_cs_logits(query, support, labels, 5).argmax(-1) == query_labels).all()


def test_dual_solution_satisfies_the_constraints_and_converges():
    _, support, labels, _ = episodes(4, 5, 5, 1, 16, seed=1)
    C = 0.1
    alpha = svm_cs_dual(support, labels, 5, C)
    torch.testing.assert_close(alpha.sum(-1), torch.zeros(4, 25, dtype=torch.float64), rtol=0, atol=1e-10)
    assert (alpha <= C * torch.nn.functional.one_hot(labels, 5) + 1e-10).all()
    Q, p, G, h, A, b = _crammer_singer_qp(support, labels, 5, C, 0.0)
    result = interior_point(Q, p, G.expand(4, -1, -1), h, A.expand(4, -1, -1), b.expand(4, -1), max_iter=15)
    assert bool(result.converged.all()), result.residual  # MetaOptNet's 15 iterations are enough here


# dim 8 < 12 supports: a singular kernel, α not unique but the logits are; ridge 1: MetaOptNet's K + I
@pytest.mark.parametrize("dim, ridge", [(8, 0.0), (20, 0.0), (20, 1.0)])
def test_logits_match_an_independent_scipy_solve_of_the_dual(dim, ridge):
    query, support, labels, _ = episodes(2, 3, 4, 3, dim, seed=2)
    C, n_way = 0.5, 3
    ours = svm_cs_logits(query, support, labels, n_way, C, ridge=ridge)
    for t in range(2):
        X, y = support[t].numpy(), labels[t].numpy()
        K, onehot = X @ X.T, np.eye(n_way)[y]
        Q = np.kron(K + ridge * np.eye(len(y)), np.eye(n_way))
        reference = scipy.optimize.minimize(
            lambda a: 0.5 * a @ Q @ a - onehot.ravel() @ a, np.zeros(Q.shape[0]),
            jac=lambda a: Q @ a - onehot.ravel(), method="SLSQP",
            bounds=[(None, bound) for bound in C * onehot.ravel()],
            constraints=[{"type": "eq", "fun": lambda a: a.reshape(-1, n_way).sum(1),
                          "jac": lambda a: np.kron(np.eye(len(y)), np.ones((1, n_way)))}],
            options={"ftol": 1e-12, "maxiter": 1000})
        assert reference.success, reference.message
        expected = query[t].numpy() @ X.T @ reference.x.reshape(-1, n_way)
        np.testing.assert_allclose(ours[t].numpy(), expected, rtol=0, atol=1e-5)


def test_strong_duality_checks_the_derivation():
    _, support, labels, _ = episodes(3, 5, 4, 1, 12, seed=3)
    C = 0.1
    alpha = svm_cs_dual(support, labels, 5, C, max_iter=30)
    W = alpha.transpose(1, 2) @ support  # w_k = Σ_i α_ik x_i
    K = support @ support.transpose(1, 2)
    dual = -0.5 * (alpha * (K @ alpha)).sum((1, 2)) + alpha.gather(-1, labels[..., None]).sum((1, 2))
    primal = crammer_singer_primal(W, support, labels, C)
    torch.testing.assert_close(primal, dual, rtol=0, atol=1e-5)
    assert (primal > 0.1).all()  # not a trivial problem


def test_gradients_reach_the_embeddings_and_match_finite_differences():
    query, support, labels, _ = episodes(1, 3, 2, 2, 7, seed=4)
    weights = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    loss = lambda q, s: (svm_cs_logits(q, s, labels, 3, 0.1, max_iter=40) * weights).sum()  # noqa: E731
    q, s = query.clone().requires_grad_(), support.clone().requires_grad_()
    grad_q, grad_s = torch.autograd.grad(loss(q, s), (q, s))
    assert grad_s.abs().max() > 1e-3
    eps = 1e-5
    for tensor, grad in ((query, grad_q), (support, grad_s)):
        numeric = torch.zeros_like(tensor)
        for index in np.ndindex(*tensor.shape):
            step = torch.zeros_like(tensor)
            step[index] = eps
            plus = loss(*((query + step, support) if tensor is query else (query, support + step)))
            minus = loss(*((query - step, support) if tensor is query else (query, support - step)))
            numeric[index] = (plus - minus) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=1e-4, atol=1e-6)


def test_head_scales_the_logits_and_learns_the_scale():
    query, support, labels, _ = episodes(2, 5, 2, 3, 10, seed=6)
    head = SVMHead(C=0.1, max_iter=15).double()
    assert head.scale.detach().item() == 1.0 and [name for name, _ in head.named_parameters()] == ["scale"]
    with torch.no_grad():
        head.scale.fill_(2.5)
    logits = head(query, support, labels, 5)
    torch.testing.assert_close(logits, 2.5 * svm_cs_logits(query, support, labels, 5, 0.1, 15))
    logits.logsumexp(-1).sum().backward()
    assert head.scale.grad is not None and head.scale.grad != 0

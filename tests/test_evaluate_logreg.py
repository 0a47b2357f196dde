"""The batched logistic-regression solver against scikit-learn, on generated few-shot features."""

import numpy as np
import pytest
import torch

from metantk_nas.evaluate.classifiers import fit_predict
from metantk_nas.evaluate.logreg import DEFAULT_TOL, fit_logreg_batched
from metantk_nas.evaluate.stats import mean_ci95


def generated_tasks(n_tasks, shot, n_aug=5, queries=15, dim=32, noise=2.0, seed=0):
    """Class prototypes + noise, support copies jittered (like augmentations), L2-normalised."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(n_tasks, 5, dim))
    labels = np.repeat(np.arange(5), shot)
    support = protos[:, labels] + noise * rng.normal(size=(n_tasks, 5 * shot, dim))
    support = np.tile(support, (1, n_aug, 1)) + 0.5 * rng.normal(size=(n_tasks, 5 * shot * n_aug, dim))
    query_labels = np.repeat(np.arange(5), queries)
    query = protos[:, query_labels] + noise * rng.normal(size=(n_tasks, 5 * queries, dim))
    unit = lambda a: (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    return (unit(support), np.broadcast_to(np.tile(labels, n_aug), (n_tasks, 5 * shot * n_aug)).copy(),
            unit(query), np.broadcast_to(query_labels, (n_tasks, 5 * queries)).copy())


@pytest.mark.parametrize("shot, C", [(1, 1.0), (5, 0.6)])
def test_batched_solver_matches_sklearn_on_1000_tasks(shot, C):
    support, labels, query, query_labels = generated_tasks(1000, shot, seed=shot)
    ours = fit_predict(support, labels, query, n_way=5, C=C, backend="torch")
    # scikit-learn's default tol=1e-4 stops lbfgs early; compare against its converged solution.
    ref = fit_predict(support, labels, query, n_way=5, C=C, backend="sklearn", n_jobs=1, sklearn_tol=1e-10)
    same_tasks = (ours == ref).all(axis=1).mean()
    acc_ours = (ours == query_labels).mean(axis=1)
    acc_ref = (ref == query_labels).mean(axis=1)
    assert same_tasks >= 0.99, same_tasks
    assert abs(acc_ours.mean() - acc_ref.mean()) * 100 <= 0.1
    assert 0.3 < acc_ref.mean() < 0.98  # the problem is neither trivial nor hopeless


def test_solution_satisfies_the_optimality_conditions():
    """Gradient of Σ CE + ‖W‖²/(2C) vanishes in the full feature space (not only in the span)."""
    support, labels, _, _ = generated_tasks(20, 5, dim=200, seed=3)
    C = 0.4
    model = fit_logreg_batched(torch.from_numpy(support), torch.from_numpy(labels), 5, C=C)
    assert bool(model.converged.all())
    x = torch.from_numpy(support).double()
    resid = torch.softmax(model.decision_function(x), -1) - torch.nn.functional.one_hot(torch.from_numpy(labels), 5)
    grad_w = torch.bmm(resid.transpose(1, 2), x) + model.weight / C
    tol = DEFAULT_TOL * support.shape[1]  # the solver's stopping rule on the summed objective
    assert grad_w.abs().max() <= tol
    assert resid.sum(1).abs().max() <= tol  # intercept gradient


def test_degenerate_supports_are_handled():
    """Identical support copies (n_aug without augmentation) make the Gram matrix singular."""
    support, labels, query, _ = generated_tasks(10, 1, n_aug=5, seed=4)
    support = np.tile(support[:, :5], (1, 5, 1))
    ours = fit_predict(support, labels, query, n_way=5, C=1.0)
    ref = fit_predict(support, labels, query, n_way=5, C=1.0, backend="sklearn", n_jobs=1, sklearn_tol=1e-10)
    assert (ours == ref).mean() > 0.999


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="C must be positive"):
        fit_logreg_batched(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), 2, C=0)
    with pytest.raises(ValueError, match="expected x"):
        fit_logreg_batched(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2)


def test_svc_is_the_official_svm_branch():
    """Predictions equal a per-task fit of the official ``meta_test`` SVM (standardise, linear SVC, one-vs-rest)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    support, labels, query, _ = generated_tasks(8, 1, seed=5)
    predicted = fit_predict(support, labels, query, n_way=5, classifier="svc", C=0.2, n_jobs=1)
    expected = np.stack([
        make_pipeline(StandardScaler(), SVC(C=0.2, kernel="linear", decision_function_shape="ovr"))
        .fit(support[t].astype(np.float64), labels[t]).predict(query[t].astype(np.float64))
        for t in range(len(support))
    ])
    assert predicted.dtype == np.int64 and np.array_equal(predicted, expected)
    assert set(np.unique(expected)) == set(range(5))  # a non-degenerate reference: every class predicted


def test_mean_ci95_matches_scipy_t_interval():
    from scipy import stats

    values = np.random.default_rng(0).uniform(size=1000)
    mean, half = mean_ci95(values)
    low, high = stats.t.interval(0.95, 999, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean()) and half == pytest.approx((high - low) / 2)

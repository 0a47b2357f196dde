"""Linear probes fitted on support features: batched logistic regression, or scikit-learn per task.

``fit_predict`` is the one entry point: all tasks' supports (T, n, d) and queries (T, m, d) in,
query predictions (T, m) out, whichever classifier and backend.
"""

from __future__ import annotations

import numpy as np
import torch

from metantk_nas.evaluate.logreg import fit_logreg_batched

#: scikit-learn settings of the official ``meta_test`` (lbfgs, max_iter 1000, random_state 0).
SKLEARN_MAX_ITER = 1000


def fit_predict(support: np.ndarray, support_labels: np.ndarray, query: np.ndarray, *, n_way: int,
                classifier: str = "lr", C: float = 1.0, backend: str = "torch", n_jobs: int = -1,
                sklearn_tol: float = 1e-4) -> np.ndarray:
    """Fit one classifier per task on its supports and predict its queries.

    Args:
        support: (T, n, d) L2-normalised support features; support_labels (T, n) in 0..n_way-1.
        query: (T, m, d) query features.
        classifier: ``lr`` (multinomial logistic regression) or ``svc`` (linear-kernel SVC after
            standardisation, the official code's SVM branch).
        C: inverse regularisation strength.
        backend: for ``lr``: ``torch`` (batched exact solver) or ``sklearn`` (per task, reference).
            ``svc`` always runs scikit-learn, tasks in parallel.
        sklearn_tol: scikit-learn's ``tol`` (its default 1e-4 stops lbfgs early; 1e-10 to compare exactly).

    Returns:
        Predicted labels (T, m), int64.
    """
    if classifier == "lr" and backend == "torch":
        model = fit_logreg_batched(torch.from_numpy(np.asarray(support)), torch.from_numpy(np.asarray(support_labels)),
                                   n_way, C=C)
        return model.predict(torch.from_numpy(np.asarray(query))).numpy().astype(np.int64)
    if classifier not in ("lr", "svc"):
        raise ValueError(f"classifier must be 'lr' or 'svc', got {classifier!r}")
    if backend not in ("torch", "sklearn"):
        raise ValueError(f"backend must be 'torch' or 'sklearn', got {backend!r}")
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n_jobs, prefer="threads", batch_size=16)(
        delayed(_sklearn_task)(support[t], support_labels[t], query[t], classifier, C, sklearn_tol)
        for t in range(len(support)))
    return np.stack(results).astype(np.int64)


def _sklearn_task(x: np.ndarray, y: np.ndarray, q: np.ndarray, classifier: str, C: float, tol: float) -> np.ndarray:
    """One task with scikit-learn, in float64 (float32 input would make lbfgs fit in float32)."""
    x, q = np.asarray(x, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if classifier == "lr":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=SKLEARN_MAX_ITER, tol=tol, random_state=0)
    else:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        model = make_pipeline(StandardScaler(), SVC(kernel="linear", C=C, decision_function_shape="ovr"))
    return model.fit(x, y).predict(q)

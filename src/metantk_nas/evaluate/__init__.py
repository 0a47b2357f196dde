"""Few-shot evaluation of trained networks (Paper §6.1, reference §6.3).

Names other than ``EvalConfig`` import torch/scipy and are loaded lazily, keeping the CLI light.
"""

from __future__ import annotations

from metantk_nas._lazy import lazy_getattr
from metantk_nas.evaluate.config import EvalConfig

_EXPORTS = {
    "evaluate": "fewshot",
    "fit_logreg_batched": "logreg",
    "fit_predict": "classifiers",
    "fold_batchnorm": "inference",
    "mean_ci95": "stats",
}

__all__ = sorted(["EvalConfig", *_EXPORTS])

__getattr__ = lazy_getattr(__name__, _EXPORTS)

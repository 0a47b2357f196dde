"""Few-shot evaluation of trained networks (Paper §6.1, reference §6.3)."""

from metantk_nas.evaluate.config import EvalConfig

__all__ = ["EvalConfig", "evaluate", "fit_logreg_batched", "fit_predict", "mean_ci95"]


def __getattr__(name: str):
    # These import torch / scipy; keep `import metantk_nas.evaluate` light.
    import importlib

    modules = {"evaluate": "fewshot", "fit_logreg_batched": "logreg", "fit_predict": "classifiers",
               "mean_ci95": "stats"}
    if name in modules:
        return getattr(importlib.import_module(f"metantk_nas.evaluate.{modules[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The training-free proxies: one registry of what each scores, on which network, from which inputs.

It names every proxy that a search can rank candidates by and that the proxy study compares — the paper's
kernels (named as ``metantk-nas kernel --kernel``) and linear regions, and the standard zero-cost proxies —
with the direction and the inputs each needs. A search method is a list of these names
(``search.methods``); this module imports no torch, so the command line and the workflow can read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: What a proxy's network may be: the masked search supernet (``forward_features``/``forward_head``, no
#: BatchNorm in train mode), the thin linear-region network, or any network that returns logits.
NETWORKS = ("supernet", "thin", "any")
#: What a proxy's inputs are: few-shot task batches, or a plain batch of images.
INPUTS = ("tasks", "images")


@dataclass(frozen=True)
class Proxy:
    """One training-free proxy.

    The calling convention of :meth:`score` follows from ``inputs`` and ``needs_labels``: ``score(model, x)``
    for images, ``score(model, x, y)`` when labels are needed (true labels or random ones), ``score(model,
    query, support, head)`` for tasks (query (T, q, C, H, W), support (T, s, C, H, W), a fresh random head:
    ``kernels.make_head``); keyword options go to the underlying function.

    Attributes:
        name: the key in configs and command lines.
        label: the row label in tables.
        function: ``module:function`` that scores (imported on first use: the registry is read by the
            torch-free command line and workflow).
        higher_is_better: the direction: whether a larger score predicts a better architecture.
        network: ``supernet``, ``thin`` or ``any`` (:data:`NETWORKS`).
        inputs: ``tasks`` or ``images`` (:data:`INPUTS`).
        needs_labels: whether ``score`` takes class labels of the images.
        summary: one line for the documentation, with the citation.
        options: keyword arguments bound to ``function`` (the MetaNTK algorithm).
    """

    name: str
    label: str
    function: str
    higher_is_better: bool
    network: str
    inputs: str
    needs_labels: bool
    summary: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.network not in NETWORKS or self.inputs not in INPUTS:
            raise ValueError(f"proxy {self.name!r}: network must be one of {NETWORKS} and inputs one of {INPUTS}, "
                             f"got {self.network!r} and {self.inputs!r}")

    @property
    def scorer(self) -> Callable[..., float]:
        """The scoring function itself (``function`` imported)."""
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)

    def score(self, *args: Any, **options: Any) -> float:
        """The proxy's value (a float) of a network on its inputs."""
        return float(self.scorer(*args, **{**self.options, **options}))


_ZERO_COST = "metantk_nas.proxies.zero_cost"
_KERNEL = "metantk_nas.proxies.kernel_scores"

#: Every proxy, in the tables' row order: the paper's, then the zero-cost baselines.
PROXIES: dict[str, Proxy] = {proxy.name: proxy for proxy in (
    Proxy("metantk-maml", "MetaNTK (MAML)", f"{_KERNEL}:metantk", False, "supernet", "tasks", False,
          "condition number of the MAML MetaNTK of a task batch (Wang et al., CVPR 2022)", {"algorithm": "maml"}),
    Proxy("metantk-anil", "MetaNTK (ANIL)", f"{_KERNEL}:metantk", False, "supernet", "tasks", False,
          "condition number of the ANIL MetaNTK of a task batch (Wang et al., CVPR 2022)", {"algorithm": "anil"}),
    Proxy("ntk", "NTK (TE-NAS)", f"{_KERNEL}:ntk", False, "supernet", "images", False,
          "condition number of the NTK of an image batch (TE-NAS: Chen et al., ICLR 2021)"),
    Proxy("linear-regions", "Linear regions", "metantk_nas.proxies.linear_regions:linear_regions", True, "thin", "images", False,
          "distinct ReLU activation patterns of the thin network (TE-NAS: Chen et al., ICLR 2021)"),
    Proxy("naswot", "NASWOT", f"{_ZERO_COST}:naswot", True, "any", "images", False,
          "log|det| of the ReLU-code Hamming kernel (Mellor et al., ICML 2021)"),
    Proxy("synflow", "SynFlow", f"{_ZERO_COST}:synflow", True, "any", "images", False,
          "synaptic flow of |θ| on an all-ones input (Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021)"),
    Proxy("snip", "SNIP", f"{_ZERO_COST}:snip", True, "any", "images", True,
          "Σ|θ ⊙ ∂L/∂θ| of the conv and linear weights (Lee et al., ICLR 2019)"),
    Proxy("grad-norm", "Grad-norm", f"{_ZERO_COST}:grad_norm", True, "any", "images", True,
          "Σ‖∂L/∂W‖₂ over conv and linear weights (Abdelfattah et al., ICLR 2021)"),
    Proxy("jacob-cov", "Jacob-cov", f"{_ZERO_COST}:jacob_cov", True, "any", "images", False,
          "eigenvalue score of the input-Jacobian correlations (Mellor et al., arXiv 2020)"),
    Proxy("params", "#Params", f"{_ZERO_COST}:params", True, "any", "images", False,
          "number of trainable parameters (Abdelfattah et al., ICLR 2021)"),
    Proxy("flops", "FLOPs", f"{_ZERO_COST}:flops", True, "any", "images", False,
          "multiply-accumulates of conv and linear layers for one input (Abdelfattah et al., ICLR 2021)"),
)}


def kernel_condition(name: str) -> tuple[str, str | None]:
    """``(condition, algorithm)`` of a condition-number proxy, as ``search.measure.Measurer`` takes them:
    ``("metantk", "maml" | "anil")`` or ``("ntk", None)``."""
    proxy = get_proxy(name)
    if proxy.network != "supernet":
        raise ValueError(f"proxy {name!r} is not a condition number")
    return proxy.function.rpartition(":")[2], proxy.options.get("algorithm")


def get_proxy(name: str) -> Proxy:
    """The proxy of a name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; expected one of {list(PROXIES)}") from None

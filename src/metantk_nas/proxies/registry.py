"""The training-free proxies: one registry of what each scores, on which network, from which inputs.

The search measures with its own code (``search.measure``): this registry does not drive it. It names every
proxy that a comparison of proxies scores — the paper's kernels (named as ``metantk-nas kernel --kernel``)
and linear regions, and the standard zero-cost proxies — with the direction and the inputs each needs, so
that one loop can score them all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from metantk_nas.kernels import metantk_condition, ntk_condition
from metantk_nas.proxies import zero_cost
from metantk_nas.proxies.linear_regions import linear_regions

#: What a proxy's network may be: the masked search supernet (``forward_features``/``forward_head``, no
#: BatchNorm in train mode), the thin linear-region network, or any network that returns logits.
NETWORKS = ("supernet", "thin", "any")
#: What a proxy's inputs are: few-shot task batches, or a plain batch of images.
INPUTS = ("tasks", "images")


@dataclass(frozen=True)
class Proxy:
    """One training-free proxy.

    The calling convention follows from ``inputs`` and ``needs_labels``: ``score(model, x)`` for images,
    ``score(model, x, y)`` when labels are needed (true labels or random ones), ``score(model, query,
    support, head)`` for tasks (query (T, q, C, H, W), support (T, s, C, H, W), a fresh random head:
    ``kernels.make_head``); keyword options go to the underlying function.

    Attributes:
        name: the key in configs and command lines.
        label: the row label in tables.
        score: the scoring function (returns a number).
        higher_is_better: the direction: whether a larger score predicts a better architecture.
        network: ``supernet``, ``thin`` or ``any`` (:data:`NETWORKS`).
        inputs: ``tasks`` or ``images`` (:data:`INPUTS`).
        needs_labels: whether ``score`` takes class labels of the images.
        summary: one line for the documentation, with the citation.
    """

    name: str
    label: str
    score: Callable[..., float]
    higher_is_better: bool
    network: str
    inputs: str
    needs_labels: bool
    summary: str

    def __post_init__(self) -> None:
        if self.network not in NETWORKS or self.inputs not in INPUTS:
            raise ValueError(f"proxy {self.name!r}: network must be one of {NETWORKS} and inputs one of {INPUTS}, "
                             f"got {self.network!r} and {self.inputs!r}")


def _metantk(model: nn.Module, query: torch.Tensor, support: torch.Tensor, head: nn.Module, *, algorithm: str,
             **options: object) -> float:
    """The MetaNTK condition number of one batch of tasks: ``kernels.metantk_condition``'s value, with its
    defaults (λτ = ∞, ρ = 1e-3, ...) for the options not given."""
    return float(metantk_condition(model, query, support, head=head, algorithm=algorithm, **options).value)


def _ntk(model: nn.Module, images: torch.Tensor, **options: object) -> float:
    """The NTK condition number of the model's own classifier: ``kernels.ntk_condition``'s value."""
    return float(ntk_condition(model, images, **options).value)


#: Every proxy, in the tables' row order: the paper's, then the zero-cost baselines.
PROXIES: dict[str, Proxy] = {proxy.name: proxy for proxy in (
    Proxy("metantk-maml", "MetaNTK (MAML)", functools.partial(_metantk, algorithm="maml"), False,
          "supernet", "tasks", False, "condition number of the MAML MetaNTK of a task batch (Wang et al., CVPR 2022)"),
    Proxy("metantk-anil", "MetaNTK (ANIL)", functools.partial(_metantk, algorithm="anil"), False,
          "supernet", "tasks", False, "condition number of the ANIL MetaNTK of a task batch (Wang et al., CVPR 2022)"),
    Proxy("ntk", "NTK (TE-NAS)", _ntk, False, "supernet", "images", False,
          "condition number of the NTK of an image batch (TE-NAS: Chen et al., ICLR 2021)"),
    Proxy("linear-regions", "Linear regions", linear_regions, True, "thin", "images", False,
          "distinct ReLU activation patterns of the thin network (TE-NAS: Chen et al., ICLR 2021)"),
    Proxy("naswot", "NASWOT", zero_cost.naswot, True, "any", "images", False,
          "log|det| of the ReLU-code Hamming kernel (Mellor et al., ICML 2021)"),
    Proxy("synflow", "SynFlow", zero_cost.synflow, True, "any", "images", False,
          "synaptic flow of |θ| on an all-ones input (Tanaka et al., NeurIPS 2020; Abdelfattah et al., ICLR 2021)"),
    Proxy("snip", "SNIP", zero_cost.snip, True, "any", "images", True,
          "Σ|θ ⊙ ∂L/∂θ| of the conv and linear weights (Lee et al., ICLR 2019)"),
    Proxy("grad-norm", "Grad-norm", zero_cost.grad_norm, True, "any", "images", True,
          "Σ‖∂L/∂W‖₂ over conv and linear weights (Abdelfattah et al., ICLR 2021)"),
    Proxy("jacob-cov", "Jacob-cov", zero_cost.jacob_cov, True, "any", "images", False,
          "eigenvalue score of the input-Jacobian correlations (Mellor et al., arXiv 2020)"),
    Proxy("params", "#Params", zero_cost.params, True, "any", "images", False,
          "number of trainable parameters (Abdelfattah et al., ICLR 2021)"),
    Proxy("flops", "FLOPs", zero_cost.flops, True, "any", "images", False,
          "multiply-accumulates of conv and linear layers for one input (Abdelfattah et al., ICLR 2021)"),
)}


def get_proxy(name: str) -> Proxy:
    """The proxy of a name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; expected one of {list(PROXIES)}") from None

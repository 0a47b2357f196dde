"""The Table 1 baselines: one registry that the training, the evaluation, the workflow and the table read.

An algorithm fixes its backbone, how it is trained (episodic meta-training or the supervised RFS
recipe), whether it trains one model per evaluated shot setting (MAML and ANIL do, as in their
papers) and its own test protocol. Every algorithm is also evaluated by the RFS linear probe on its
features (``metantk-nas evaluate``), so backbones compare like for like.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Evaluated shot settings (Paper Table 1).
SHOTS = (1, 5)


@dataclass(frozen=True)
class Algorithm:
    """One Table 1 baseline.

    Attributes:
        name: the key in configs, CLIs and paths.
        label: the row label of Paper Table 1 (``published.yaml`` ``model``).
        backbone: ``conv4`` or ``resnet12`` (``metantk_nas.space.backbones``).
        training: ``episodic`` (``metantk_nas.baselines.episodic``) or ``supervised`` (``metantk_nas.train``).
        per_shot: one model per evaluated shot setting (trained with that many shots).
        protocol: the test protocol of the original paper: ``maml`` (adapt every weight), ``anil``
            (adapt the head), ``svm`` (the MetaOptNet SVM head) or ``probe`` (RFS: logistic regression).
        summary: one line for the documentation.
    """

    name: str
    label: str
    backbone: str
    training: str
    per_shot: bool
    protocol: str
    summary: str

    @property
    def adapt(self) -> str | None:
        """What the inner loop adapts: every weight (MAML), the head (ANIL), nothing (the others)."""
        return {"maml": "all", "anil": "head"}.get(self.protocol)

    def regimes(self) -> tuple[str, ...]:
        """The trained models of this algorithm: ``1shot``/``5shot`` or ``all``."""
        return tuple(f"{shot}shot" for shot in SHOTS) if self.per_shot else ("all",)

    def regime_for(self, shot: int | str) -> str:
        """The model that is evaluated on ``shot``-shot tasks."""
        return f"{int(shot)}shot" if self.per_shot else "all"


#: Every baseline, in the row order of Paper Table 1.
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("maml", "MAML [19]", "conv4", "episodic", True, "maml",
              "MAML (Finn et al. 2017): Conv4, second-order meta-gradients, the whole network adapted"),
    Algorithm("anil", "ANIL [50]", "conv4", "episodic", True, "anil",
              "ANIL (Raghu et al. 2020): MAML with the inner loop over the head only"),
    Algorithm("metaoptnet", "MetaOptNet [38]", "resnet12", "episodic", False, "svm",
              "MetaOptNet-SVM (Lee et al. 2019): ResNet-12 meta-trained through a differentiable SVM head"),
    Algorithm("rfs", "RFS [60]", "resnet12", "supervised", False, "probe",
              "RFS (Tian et al. 2020): ResNet-12 pre-trained on all training classes, linear probe at test"),
)}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm of a name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(ALGORITHMS)}") from None

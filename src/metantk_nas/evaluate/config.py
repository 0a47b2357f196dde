"""Few-shot evaluation configuration (Paper §6.1 / reference §6.3); mirrors the workflow's ``evaluate`` section.

Defaults are the official code's (LR with C=1.0, 50 queries per class, 5× augmented supports); the
paper's per-setting classifier and C (Appendix E) are set by the workflow's ``paper.yaml``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from metantk_nas.train.config import _check, _from_dict

CLASSIFIERS = ("lr", "svc")
BACKENDS = ("torch", "sklearn")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One evaluation run; ``C_per_shot`` overrides ``C`` for the listed shot counts."""

    # protocol
    shots: tuple[int, ...] = (1, 5)
    n_way: int = 5
    tasks: int = 1000
    queries: int = 50  # per class (RFS uses 15)
    n_aug: int = 5  # copies of every support image, each independently augmented
    split: str = "test"
    # classifier
    classifier: str = "lr"  # lr: multinomial logistic regression; svc: linear-kernel SVC
    C: float = 1.0  # inverse L2 strength (scikit-learn convention)
    C_per_shot: tuple[tuple[int, float], ...] = ()  # e.g. ((1, 0.2), (5, 0.6))
    backend: str = "torch"  # lr only: torch (batched solver) | sklearn (reference, per task)
    n_jobs: int = -1  # scikit-learn tasks in parallel (threads); -1 = this process's threads (--threads)
    # system
    seed: int = 0
    device: str = "auto"
    batch_size: int = 128  # images per forward pass (larger only helps on a GPU)
    amp: bool = False  # bf16 autocast for the features (CUDA or a bf16 CPU; off: float32 as the official code)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shots", tuple(self.shots))
        object.__setattr__(self, "C_per_shot", tuple((int(k), float(c)) for k, c in self.C_per_shot))
        _check(len(self.shots) > 0 and all(isinstance(k, int) and k >= 1 for k in self.shots),
               "shots", "a non-empty list of integers >= 1", self.shots)
        _check(self.n_way >= 2, "n_way", "an integer >= 2", self.n_way)
        _check(self.tasks >= 1, "tasks", "an integer >= 1", self.tasks)
        _check(self.queries >= 1, "queries", "an integer >= 1", self.queries)
        _check(self.n_aug >= 1, "n_aug", "an integer >= 1", self.n_aug)
        _check(self.split in ("train", "val", "test"), "split", "train, val or test", self.split)
        _check(self.classifier in CLASSIFIERS, "classifier", f"one of {CLASSIFIERS}", self.classifier)
        _check(self.C > 0 and all(c > 0 for _, c in self.C_per_shot), "C", "positive numbers", self.C)
        _check(self.backend in BACKENDS, "backend", f"one of {BACKENDS}", self.backend)
        _check(self.seed >= 0, "seed", "a non-negative integer", self.seed)
        _check(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        _check(self.device in {"auto", "cpu", "cuda"} or self.device.startswith("cuda:"),
               "device", "'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)

    def C_for(self, shot: int) -> float:
        """The regularisation C used for ``shot``-shot tasks."""
        return dict(self.C_per_shot).get(shot, self.C)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "evaluate config") -> EvalConfig:
        """Build from a mapping; ``C_per_shot`` may be a mapping ``{shot: C}``; unknown keys are refused."""
        values = dict(values)
        if isinstance(values.get("C_per_shot"), Mapping):
            values["C_per_shot"] = [[int(k), v] for k, v in values["C_per_shot"].items()]
        if "C_per_shot" in values:
            pairs = values.pop("C_per_shot")
            if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
                raise ValueError(f"{source}: C_per_shot: expected a mapping shot → C, got {pairs!r}")
            base = _from_dict(cls, values, source)
            return dataclasses.replace(base, C_per_shot=tuple((int(k), float(c)) for k, c in pairs))
        return _from_dict(cls, values, source)

    def to_dict(self) -> dict[str, Any]:
        return {"shots": list(self.shots), **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                              if f.name not in ("shots", "C_per_shot")},
                "C_per_shot": {str(k): c for k, c in self.C_per_shot}}

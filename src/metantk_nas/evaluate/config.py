"""Few-shot evaluation configuration (Paper §6.1 / reference §6.3): the ``evaluate`` section of the workflow.

Defaults are the official code's (LR with C=1.0 for both shot settings, 50 queries per class, 5×
augmented supports); the paper's per-setting classifier and C (Appendix E) are set by
``config/paper.yaml``. The protocol's two shot settings, 1 and 5, each have their own classifier
and C, under the same keys as in the workflow config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.device import check_device
from metantk_nas.options import Options, option

CLASSIFIERS = ("lr", "svc")
BACKENDS = ("torch", "sklearn")
#: The shot settings of the protocol (Paper Table 1).
SHOTS = (1, 5)


@dataclass(frozen=True)
class EvalConfig(Options):
    """One evaluation run: ``tasks`` N-way tasks per shot setting, a linear classifier per task."""

    section: ClassVar[str] = "evaluate"

    # protocol
    shots: tuple[int, ...] = option(SHOTS, "shot settings to evaluate", choices=SHOTS, workflow=False)
    n_way: int = option(5, "classes per task", minimum=2, workflow=False)
    tasks: int = option(1000, "test tasks per shot setting", minimum=1)
    queries: int = option(50, "query images per class (RFS uses 15)", minimum=1)
    n_aug: int = option(5, "augmented copies of every support image, each independently augmented", minimum=1)
    split: str = option("test", "split the tasks are drawn from", choices=("train", "val", "test"), workflow=False)
    # classifier per shot setting
    classifier_1shot: str = option("lr", "classifier of 1-shot tasks: lr (logistic regression) or svc (linear SVC)",
                                   choices=CLASSIFIERS)
    C_1shot: float = option(1.0, "inverse L2 penalty C of the 1-shot classifier", exclusive_minimum=0)
    classifier_5shot: str = option("lr", "classifier of 5-shot tasks", choices=CLASSIFIERS)
    C_5shot: float = option(1.0, "inverse L2 penalty C of the 5-shot classifier", exclusive_minimum=0)
    backend: str = option("torch", "logistic-regression solver: torch (batched) or sklearn (per task, reference)",
                          choices=BACKENDS, workflow=False)
    n_jobs: int = option(-1, "scikit-learn tasks in parallel (threads); -1 = this process's threads (--threads)",
                         minimum=-1, workflow=False)
    # system
    seed: int = option(0, "seed of the tasks and the support augmentation", minimum=0, workflow=False)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)
    batch_size: int = option(128, "images per forward pass (larger only helps on a GPU)", minimum=1, workflow=False)
    amp: bool = option(False, "bf16 autocast for the features (CUDA or a bf16 CPU; off: float32 as the "
                       "official code)", workflow=False)

    def check(self) -> None:
        if not self.shots or len(set(self.shots)) != len(self.shots):
            raise ValueError(f"key 'shots' must be distinct values from {list(SHOTS)}, got {list(self.shots)}")
        if self.n_jobs == 0:
            raise ValueError("key 'n_jobs' must be -1 or a positive integer, got 0")
        check_device(self.device)

    def classifier_for(self, shot: int) -> tuple[str, float]:
        """The classifier and its C for ``shot``-shot tasks."""
        return getattr(self, f"classifier_{shot}shot"), getattr(self, f"C_{shot}shot")

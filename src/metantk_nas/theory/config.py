"""Settings of a theory run: defaults, a YAML file, then command-line flags (each overriding the last).

The defaults are sized for the default workflow on a 2-core CPU (a few minutes); larger runs change
sizes only, never the code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.device import check_device
from metantk_nas.options import Options, option

#: Hidden-layer activations of the theory MLPs.
ACTIVATIONS = ("tanh", "relu")


@dataclass(frozen=True)
class TheoryConfig(Options):
    """Everything that determines a theory run's numbers (recorded in ``theory.json``)."""

    section: ClassVar[str] = "theory"

    widths: tuple[int, ...] = option((64, 256, 1024, 4096), "hidden widths of the MLPs, distinct and increasing",
                                     minimum=1)
    depth: int = option(1, "hidden layers", minimum=1)
    activation: str = option("tanh", "activation: tanh (smooth, as the proof's Lemma 1 needs) or relu",
                             choices=ACTIVATIONS)
    tasks: int = option(5, "training tasks (a fixed set, full-batch outer loop)", minimum=1)
    test_tasks: int = option(20, "held-out tasks from the test classes", minimum=1)
    ways: int = option(5, "classes per task", minimum=2)
    shots: int = option(1, "support images per class", minimum=1)
    queries: int = option(1, "query images per class, in training and held-out tasks", minimum=1)
    inner_steps: int = option(1, "inner gradient steps", minimum=1)
    inner_lr: float = option(1.0, "inner rate as a fraction of 1/max_i lambda_max(Theta(X'_i, X'_i)) (NTK at init; "
                             "< 2 is stable)", exclusive_minimum=0, exclusive_maximum=2)
    outer_lr: float = option(0.9, "outer rate as a fraction of 2/(sigma_max(Phi) + sigma_min(Phi)) (Theorem 1 "
                             "needs < 1)", exclusive_minimum=0, exclusive_maximum=1)
    steps: int = option(100, "outer gradient steps", minimum=1)
    checkpoints: int = option(2, "parameter-movement checkpoints after step 0, evenly spaced up to steps",
                              minimum=1)
    jacobian_probes: int = option(8, "probes for ||J_t - J_0||_F: 0 = exact over all rows, m > 0 = Hutchinson",
                                  minimum=0)
    image_size: int = option(32, "images are resized to this side", minimum=1)
    seed: int = option(0, "seed of the theory checks", minimum=0)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)

    def check(self) -> None:
        if len(set(self.widths)) != len(self.widths) or list(self.widths) != sorted(self.widths):
            raise ValueError(f"key 'widths' must be distinct and increasing, got {list(self.widths)}")
        if self.checkpoints > self.steps:
            raise ValueError(f"key 'checkpoints' ({self.checkpoints}) exceeds steps ({self.steps})")
        check_device(self.device)

    @property
    def checkpoint_steps(self) -> list[int]:
        """``0`` and ``checkpoints`` evenly spaced steps, the last being ``steps``."""
        return [0] + [round(self.steps * (i + 1) / self.checkpoints) for i in range(self.checkpoints)]

"""Settings of a theory run: defaults, a YAML file, then command-line flags (each overriding the last).

The defaults are sized for the default workflow on a 2-core CPU (a few minutes); larger runs change
sizes only, never the code path.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from metantk_nas.io import read_yaml_section


#: Hidden-layer activations of the theory MLPs.
ACTIVATIONS = ("tanh", "relu")


@dataclass(frozen=True)
class TheoryConfig:
    """Everything that determines a theory run's numbers (recorded in ``theory.json``)."""

    widths: tuple[int, ...] = (64, 256, 1024, 4096)
    depth: int = 1  # hidden layers
    activation: str = "tanh"  # smooth, as the proof's Lemma 1 needs; "relu" for comparison
    tasks: int = 5  # training tasks (fixed set, full-batch outer loop)
    test_tasks: int = 20  # held-out tasks from the TEST classes
    ways: int = 5
    shots: int = 1
    queries: int = 1  # per class, in training and held-out tasks
    inner_steps: int = 1
    #: Inner rate as a fraction of 1 / max_i lambda_max(Theta(X'_i, X'_i)) (NTK at init; < 2 is stable).
    inner_lr: float = 1.0
    #: Outer rate as a fraction of 2 / (sigma_max(Phi) + sigma_min(Phi)) (Theorem 1 needs < 1).
    outer_lr: float = 0.9
    steps: int = 100
    checkpoints: int = 2  # movement measured at t = 0 and at this many evenly spaced steps ending at ``steps``
    #: Probes for ||J_t - J_0||_F: 0 = exact over all rows, m > 0 = Hutchinson with m Gaussian probes.
    jacobian_probes: int = 8
    image_size: int = 32
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("depth", "tasks", "test_tasks", "ways", "shots", "queries", "inner_steps", "steps",
                    "checkpoints", "image_size")
        for key in positive:
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"theory config: {key} must be a positive integer, got {getattr(self, key)!r}")
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"theory config: widths must be positive integers, got {self.widths!r}")
        if len(set(self.widths)) != len(self.widths) or list(self.widths) != sorted(self.widths):
            raise ValueError(f"theory config: widths must be distinct and increasing, got {self.widths!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"theory config: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not 0 < self.inner_lr < 2:
            raise ValueError(f"theory config: inner_lr is a fraction of 1/lambda_max and must be in (0, 2), "
                             f"got {self.inner_lr}")
        if not 0 < self.outer_lr < 1:
            raise ValueError(f"theory config: outer_lr is a fraction of 2/(sigma_max+sigma_min) and must be "
                             f"in (0, 1) (Theorem 1), got {self.outer_lr}")
        if self.checkpoints > self.steps:
            raise ValueError(f"theory config: checkpoints ({self.checkpoints}) exceeds steps ({self.steps})")
        if not isinstance(self.jacobian_probes, int) or self.jacobian_probes < 0:
            raise ValueError(f"theory config: jacobian_probes must be >= 0, got {self.jacobian_probes!r}")
        if self.seed < 0:
            raise ValueError(f"theory config: seed must be non-negative, got {self.seed}")

    @property
    def checkpoint_steps(self) -> list[int]:
        """``0`` and ``checkpoints`` evenly spaced steps, the last being ``steps``."""
        return [0] + [round(self.steps * (i + 1) / self.checkpoints) for i in range(self.checkpoints)]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["widths"] = list(self.widths)
        return data


_FIELDS = {f.name for f in dataclasses.fields(TheoryConfig)}


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TheoryConfig:
    """Defaults, then the YAML mapping at ``path`` (keys as in :class:`TheoryConfig`), then ``overrides``.

    ``None`` values in ``overrides`` mean "not given". Unknown keys are an error naming the file.
    """
    values: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml_section(path, "theory")
        unknown = sorted(set(loaded) - _FIELDS)
        if unknown:
            raise ValueError(f"{path}: unknown theory settings {unknown}; expected some of {sorted(_FIELDS)}")
        values.update(loaded)
    values.update({key: value for key, value in (overrides or {}).items() if value is not None})
    if "widths" in values:
        values["widths"] = tuple(values["widths"])
    where = f"{path}" if path is not None else "command line"
    try:
        return TheoryConfig(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error

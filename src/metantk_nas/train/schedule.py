"""Per-epoch schedules of the RFS recipe (reference §6.2), epochs counted 1..E."""

from __future__ import annotations

from collections.abc import Sequence


def drop_path_at(epoch: int, epochs: int, max_prob: float) -> float:
    """Drop-path probability set at the start of ``epoch``: linear ramp p·e/E (p_1 = p/E, p_E = p)."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs}, got {epoch}")
    return max_prob * epoch / epochs


def lr_at(epoch: int, lr0: float, decay_epochs: Sequence[int], decay_rate: float = 0.1) -> float:
    """Step decay: lr0 · rate^{#{d: epoch > d}} (mini: 1–60 → 0.02, 61–80 → 0.002, 81–100 → 0.0002)."""
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1, got {epoch}")
    return lr0 * decay_rate ** sum(epoch > d for d in decay_epochs)

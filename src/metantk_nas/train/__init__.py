"""RFS supervised training of final networks (Paper §6.1, reference §6.1–6.2)."""

from metantk_nas.train.config import TrainConfig
from metantk_nas.train.schedule import drop_path_at, lr_at

__all__ = ["TrainConfig", "drop_path_at", "lr_at", "train"]


def __getattr__(name: str):
    # The loop imports torch and the network; keep `import metantk_nas.train` light.
    if name == "train":
        from metantk_nas.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

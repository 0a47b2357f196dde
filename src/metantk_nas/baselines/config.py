"""Settings of the Table 1 baselines, one frozen dataclass per algorithm, defaults = the original papers.

Each value's source is in its help text: MAML (Finn et al., ICML 2017, §5.2 and Appendix A.2),
ANIL (Raghu et al., ICLR 2020, §4: "the same hyperparameters as MAML"), MetaOptNet (Lee et al.,
CVPR 2019, §4.2 and the released training command), RFS (Tian et al., ECCV 2020, §4.1). The
workflow's ``baselines.<name>`` blocks override single keys; ``config/paper.yaml`` keeps these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from metantk_nas.device import check_device
from metantk_nas.options import Options, option
from metantk_nas.train.config import TrainConfig


@dataclass(frozen=True)
class MAMLConfig(Options):
    """MAML meta-training and test-time adaptation of Conv4 (Finn et al. 2017, miniImageNet)."""

    section: ClassVar[str] = "maml"

    width: float = option(1.0, "backbone width multiplier (1 = 32 filters, MAML's miniImageNet Conv4)",
                          exclusive_minimum=0)
    meta_steps: int = option(60000, "meta-updates (outer steps); MAML: 60 000", minimum=1)
    meta_batch_1shot: int = option(4, "tasks per meta-update of the 1-shot model (MAML: 4)", minimum=1)
    meta_batch_5shot: int = option(2, "tasks per meta-update of the 5-shot model (MAML: 2)", minimum=1)
    queries: int = option(15, "query images per class of a training task (MAML: 15)", minimum=1)
    inner_steps: int = option(5, "inner-loop SGD steps at training (MAML: 5)", minimum=1)
    inner_steps_test: int = option(10, "inner-loop SGD steps at test (MAML: 10)", minimum=0)
    inner_lr: float = option(0.01, "inner-loop learning rate α (MAML: 0.01)", exclusive_minimum=0)
    meta_lr: float = option(1e-3, "Adam learning rate β of the meta-update (MAML: 0.001)", exclusive_minimum=0)
    first_order: bool = option(False, "first-order MAML (no gradient through the inner loop's gradients)")
    checkpoint_every: int = option(500, "meta-updates between two resume checkpoints", minimum=1, workflow=False)
    seed: int = option(0, "seed of the initialisation and the training tasks", minimum=0, workflow=False)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)

    def check(self) -> None:
        check_device(self.device)

    def meta_batch(self, shot: int) -> int:
        """Tasks per meta-update of the ``shot``-shot model."""
        return getattr(self, f"meta_batch_{shot}shot")


@dataclass(frozen=True)
class ANILConfig(MAMLConfig):
    """ANIL: MAML's settings, the inner loop over the head only (Raghu et al. 2020, §4)."""

    section: ClassVar[str] = "anil"


@dataclass(frozen=True)
class MetaOptNetConfig(Options):
    """MetaOptNet-SVM meta-training of ResNet-12 (Lee et al. 2019, miniImageNet)."""

    section: ClassVar[str] = "metaoptnet"

    width: float = option(1.0, "backbone width multiplier (1 = 64-160-320-640 channels)", exclusive_minimum=0)
    drop_rate: float = option(0.1, "ResNet-12 dropout / DropBlock rate (MetaOptNet: 0.1, block size 5)",
                              minimum=0, exclusive_maximum=1)
    epochs: int = option(60, "training epochs (MetaOptNet: 60)", minimum=1)
    updates_per_epoch: int = option(1000, "updates per epoch (MetaOptNet: 1000 batches of 8 episodes)", minimum=1)
    meta_batch: int = option(8, "episodes per update (MetaOptNet: 8)", minimum=1)
    train_shot: int = option(15, "shots per class of a training episode (MetaOptNet-SVM: 15)", minimum=1)
    queries: int = option(6, "query images per class of a training episode (MetaOptNet: 6)", minimum=1)
    lr: float = option(0.1, "SGD learning rate (Nesterov momentum 0.9)", exclusive_minimum=0)
    momentum: float = option(0.9, "SGD Nesterov momentum", minimum=0, exclusive_maximum=1)
    weight_decay: float = option(5e-4, "weight decay", minimum=0)
    decay_epochs: tuple[int, ...] = option((20, 40, 50), "first epochs of each new lr factor (MetaOptNet: 20 40 50, "
                                           "its LambdaLR stepped at the start of every epoch); strictly ascending, "
                                           "each at most epochs", minimum=1)
    decay_factors: tuple[float, ...] = option((0.06, 0.012, 0.0024), "lr factor from each decay epoch on "
                                              "(MetaOptNet: 0.06 0.012 0.0024)", exclusive_minimum=0)
    C: float = option(0.1, "SVM penalty C of the Crammer-Singer head (MetaOptNet: 0.1)", exclusive_minimum=0)
    ridge: float = option(1.0, "ridge added to the dual's quadratic term (MetaOptNet's released code: 1; 0 = the "
                          "plain Crammer-Singer SVM)", minimum=0)
    qp_iterations: int = option(15, "interior-point iterations of the SVM's QP (MetaOptNet: 15)", minimum=1)
    label_smoothing: float = option(0.1, "label smoothing of the episode loss (MetaOptNet: 0.1)", minimum=0,
                                    exclusive_maximum=1)
    crop_padding: int = option(8, "zero padding of the training episodes' random crop (with flip and colour "
                               "jitter, MetaOptNet's augmentation)", minimum=0)
    checkpoint_every: int = option(100, "updates between two resume checkpoints", minimum=1, workflow=False)
    seed: int = option(0, "seed of the initialisation, the training episodes and the augmentation", minimum=0,
                       workflow=False)
    device: str = option("auto", "auto | cpu | cuda[:N]", workflow=False)

    def check(self) -> None:
        decay = list(self.decay_epochs)
        if decay != sorted(set(decay)) or any(d > self.epochs for d in decay):
            raise ValueError(f"key 'decay_epochs' must be strictly ascending epochs in 1..{self.epochs}, got {decay}")
        if len(self.decay_factors) != len(decay):
            raise ValueError(f"key 'decay_factors' needs one factor per decay epoch ({len(decay)}), "
                             f"got {list(self.decay_factors)}")
        check_device(self.device)

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate factor of a (1-based) epoch: 1 before the first decay epoch, then its factor."""
        passed = [f for e, f in zip(self.decay_epochs, self.decay_factors) if epoch >= e]
        return passed[-1] if passed else 1.0


@dataclass(frozen=True)
class RFSConfig(TrainConfig):
    """RFS supervised pre-training of ResNet-12 (Tian et al. 2020, §4.1): the train recipe at lr 0.05."""

    section: ClassVar[str] = "rfs"

    lr: float = option(0.05, "initial SGD learning rate (RFS: 0.05)", exclusive_minimum=0)
    drop_path: float = option(0.0, "unused by ResNet-12 (its regularisation is drop_rate)", minimum=0,
                              exclusive_maximum=1)
    width: float = option(1.0, "backbone width multiplier (1 = 64-160-320-640 channels)", exclusive_minimum=0)
    drop_rate: float = option(0.1, "ResNet-12 dropout / DropBlock rate (RFS: 0.1, block size 5)", minimum=0,
                              exclusive_maximum=1)


#: The settings class of each algorithm.
CONFIGS: dict[str, type[Options]] = {"maml": MAMLConfig, "anil": ANILConfig, "metaoptnet": MetaOptNetConfig,
                                     "rfs": RFSConfig}

"""Backbones of the Table 1 baselines: MAML's Conv4 and the RFS / MetaOptNet ResNet-12.

* ``Conv4`` (Finn et al. 2017, miniImageNet): 4 × [conv3×3 (bias) → BatchNorm → ReLU → max-pool 2], 32 filters,
  then a linear head on the flattened map. BatchNorm keeps no running statistics (``track_running_stats=False``):
  MAML normalises with the statistics of the batch at hand at training *and* test time (transductive batch norm),
  which is what its published numbers assume; the support and the query set are normalised separately.
  0.03 M parameters with a 5-way head at 84 px (Table 1).
* ``ResNet12`` (Lee et al. 2019; Tian et al. 2020): 4 residual blocks of 64-160-320-640 channels, each three
  conv3×3 → BN → LeakyReLU(0.1) with a 1×1-conv shortcut added before the last activation, max-pool 2, then
  dropout (blocks 1–2) or DropBlock (Ghiasi et al. 2018; blocks 3–4) whose strength ramps up linearly over
  training as in RFS; global average pooling → 640-d features → linear head. 12.5 M parameters (64-way head).

Both follow the project's timm contract (``forward_features`` → ``forward_head``), name their classifier
``head`` (ANIL adapts exactly ``head.*``) and state ``feature_dim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CONV4_FILTERS = 32
RESNET12_CHANNELS = (64, 160, 320, 640)
# RFS ramps DropBlock's drop rate over 20 × 2000 batches (its ``drop_rate / (20 * 2000)`` per batch).
DROPBLOCK_RAMP_BATCHES = 20 * 2000


class Conv4(nn.Module):
    """MAML's 4-layer convolutional network (Finn et al. 2017; Vinyals et al. 2016).

    Args:
        num_classes: width of the head (N of the N-way task for MAML/ANIL).
        image_size: input height = width; the head sees ``width × (image_size // 16)²`` features
            (84 px → 5×5, 32 px → 2×2).
        width: filters per layer (32 for miniImageNet in MAML).
        in_channels: image channels.
    """

    def __init__(self, num_classes: int, image_size: int, width: int = CONV4_FILTERS, in_channels: int = 3) -> None:
        super().__init__()
        side = image_size // 16
        if side < 1:
            raise ValueError(f"Conv4 needs images of at least 16 px (4 max-pools), got {image_size}")
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1, bias=True),
                       nn.BatchNorm2d(width, track_running_stats=False),
                       nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * side * side
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last feature map (MAML's head sees spatial positions, no pooling)."""
        return torch.flatten(self.features(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of the linear head."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: ``forward_head(forward_features(x))``."""
        return self.forward_head(self.forward_features(x))


def dropblock_mask(shape: torch.Size | Sequence[int], gamma: float, block_size: int, *,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A DropBlock keep-mask (1 = keep) for a ``(B, C, H, W)`` map (Ghiasi et al. 2018).

    Block seeds are drawn independently (probability ``gamma``) per sample and channel at the
    ``(H − b + 1) × (W − b + 1)`` positions where a ``b × b`` block fits, and each seed zeroes the block
    whose top-left corner it is: dropped units form whole squares, so a dropped semantic region cannot
    be recovered from its neighbours the way it can after unit-wise dropout.
    """
    batch, channels, height, width = shape
    b = block_size
    if not 1 <= b <= min(height, width):
        raise ValueError(f"block size {b} must be in [1, {min(height, width)}] for a {height}×{width} map")
    seeds = torch.bernoulli(torch.full((batch, channels, height - b + 1, width - b + 1), float(gamma),
                                       device=device, dtype=dtype))
    # Dilating the seeds by a b×b window anchored at the seed: out[i, j] = max seeds[i-b+1..i, j-b+1..j].
    blocks = F.max_pool2d(F.pad(seeds, (b - 1, b - 1, b - 1, b - 1)), kernel_size=b, stride=1)
    return 1.0 - blocks


def dropblock(x: torch.Tensor, gamma: float, block_size: int) -> torch.Tensor:
    """Apply a DropBlock mask and rescale by ``count / ones`` so the expected activation is unchanged."""
    mask = dropblock_mask(x.shape, gamma, block_size, device=x.device, dtype=x.dtype)
    return x * mask * (mask.numel() / mask.sum().clamp_min(1.0))


class ResNet12Block(nn.Module):
    """One ResNet-12 block: 3 × (conv3×3 → BN → LeakyReLU) with a 1×1 shortcut, max-pool 2, regularisation.

    ``batches_seen`` (a buffer, so checkpoints resume the ramp) counts the training forward passes of this
    block; with ``use_dropblock`` the drop rate grows with it (RFS), otherwise plain dropout at ``drop_rate``.
    """

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float, use_dropblock: bool,
                 block_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                      nn.BatchNorm2d(out_channels))
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.drop_rate = drop_rate
        self.use_dropblock = use_dropblock
        self.block_size = block_size
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def keep_rate(self) -> float:
        """RFS's linear ramp: ``max(1 − drop_rate / 40000 · batches_seen, 1 − drop_rate)``."""
        seen = int(self.batches_seen)
        return max(1.0 - self.drop_rate / DROPBLOCK_RAMP_BATCHES * seen, 1.0 - self.drop_rate)

    def gamma(self, feat: int) -> float:
        """Seed probability giving a dropped fraction ≈ ``1 − keep_rate`` on a ``feat × feat`` map.

        The block size is clamped to ``feat`` so 32-px inputs (2×2 maps in block 4) work.
        """
        b = min(self.block_size, feat)
        return (1.0 - self.keep_rate()) / b**2 * feat**2 / (feat - b + 1) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block, pooling, then dropout/DropBlock (training mode only)."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.act(self.bn3(self.conv3(out)) + self.shortcut(x))
        out = self.pool(out)
        if not self.training:
            return out
        self.batches_seen += 1
        if self.drop_rate <= 0:
            return out
        if not self.use_dropblock:
            return F.dropout(out, p=self.drop_rate, training=True)
        feat = out.shape[-1]
        gamma = self.gamma(feat)
        return dropblock(out, gamma, min(self.block_size, feat)) if gamma > 0 else out


class ResNet12(nn.Module):
    """The ResNet-12 of MetaOptNet (Lee et al. 2019) and RFS (Tian et al. 2020).

    Args:
        num_classes: width of the head (64 mini-ImageNet / 351 tiered-ImageNet base classes for RFS).
        channels: output channels of the 4 blocks.
        drop_rate: dropout probability (blocks 1–2) and final DropBlock drop rate (blocks 3–4).
        dropblock_size: DropBlock's block size (clamped to the feature-map size).
        in_channels: image channels.

    Any input of at least 16 px works: global average pooling makes ``feature_dim = channels[-1]``.
    """

    def __init__(self, num_classes: int, channels: Sequence[int] = RESNET12_CHANNELS, drop_rate: float = 0.1,
                 dropblock_size: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"ResNet-12 has 4 blocks, got channels {tuple(channels)}")
        blocks = []
        previous = in_channels
        for i, c in enumerate(channels):
            blocks.append(ResNet12Block(previous, c, drop_rate, use_dropblock=i >= 2, block_size=dropblock_size))
            previous = c
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = channels[-1]
        self.head = nn.Linear(self.feature_dim, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled output of block 4."""
        return self.blocks(x).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of the linear head."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: ``forward_head(forward_features(x))``."""
        return self.forward_head(self.forward_features(x))


#: The backbones by name (the network classes; :func:`build_backbone` scales them).
BACKBONES: dict[str, type[nn.Module]] = {"conv4": Conv4, "resnet12": ResNet12}


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _check(name: str, width: float) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; allowed: {', '.join(sorted(BACKBONES))}")
    if not width > 0:
        raise ValueError(f"width multiplier must be positive, got {width}")


def build_backbone(name: str, num_classes: int, image_size: int, width: float = 1.0,
                   drop_rate: float = 0.1) -> nn.Module:
    """A Table 1 backbone by name; ``width`` scales every channel count (reduced-width CPU runs) and
    ``drop_rate`` is ResNet-12's dropout / DropBlock rate (Conv4 has none)."""
    _check(name, width)
    if name == "conv4":
        return Conv4(num_classes, image_size, width=_scaled(CONV4_FILTERS, width))
    return ResNet12(num_classes, channels=tuple(_scaled(c, width) for c in RESNET12_CHANNELS), drop_rate=drop_rate)


def backbone_label(name: str, width: float = 1.0) -> str:
    """How tables name a backbone, stating its channels so reduced widths are visible."""
    _check(name, width)
    if name == "conv4":
        return f"Conv4 ({_scaled(CONV4_FILTERS, width)} filters)"
    return "ResNet-12 (" + "-".join(str(_scaled(c, width)) for c in RESNET12_CHANNELS) + ")"


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone as ``model.pt`` and the training checkpoint record it: name, width multiplier, drop rate."""

    name: str
    width: float = 1.0
    drop_rate: float = 0.1

    def build(self, num_classes: int, image_size: int) -> nn.Module:
        """The untrained network."""
        return build_backbone(self.name, num_classes, image_size, self.width, self.drop_rate)

    def label(self) -> str:
        """How tables name it (channels stated, so reduced widths are visible)."""
        return backbone_label(self.name, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.name, "width": self.width, "drop_rate": self.drop_rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        return cls(data["backbone"], float(data["width"]), float(data["drop_rate"]))

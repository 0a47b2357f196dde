"""Building blocks of the ``darts_fewshot`` operations (§1.1), with the normalisation as a parameter.

``norm="batch"`` gives BatchNorm2d (affine, running statistics) as used for training and the
linear-region network; ``norm="group"`` gives GroupNorm(min(16, C), C) as the official MetaNTK
network has after its BatchNorm→GroupNorm conversion, so no model is ever converted after the fact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group")


def make_norm(C: int, norm: str, affine: bool = True) -> nn.Module:
    """Return the normalisation layer for ``C`` channels (``"batch"`` or ``"group"``)."""
    if norm == "batch":
        return nn.BatchNorm2d(C, affine=affine, track_running_stats=True)
    if norm == "group":
        groups = min(16, C)
        if C % groups:
            raise ValueError(f"norm='group': {C} channels are not divisible into {groups} groups")
        return nn.GroupNorm(groups, C, affine=affine)
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


class ReLUConvBN(nn.Sequential):
    """ReLU → Conv(k×k, no bias) → norm; the 1×1 cell preprocessor."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, norm: str = "batch") -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            make_norm(C_out, norm, affine),
        )


class SepConv(nn.Sequential):
    """One depthwise-separable unit: ReLU → depthwise k×k → pointwise 1×1 → norm."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, norm: str = "batch") -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            make_norm(C_out, norm, affine),
        )


class DualSepConv(nn.Sequential):
    """``sep_conv_3x3``: a strided separable unit followed by a stride-1 one."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True, norm: str = "batch") -> None:
        super().__init__(
            SepConv(C_in, C_in, kernel_size, stride, padding, dilation, affine, norm),
            SepConv(C_in, C_out, kernel_size, 1, padding, dilation, affine, norm),
        )


class FacConv(nn.Sequential):
    """``conv_1x5_5x1``: ReLU → Conv(1×5, stride on both dims) → Conv(5×1) → norm (1×5 first, as official)."""

    def __init__(self, C_in: int, C_out: int, kernel_length: int, stride: int, padding: int,
                 affine: bool = True, norm: str = "batch") -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, (1, kernel_length), stride=stride, padding=(0, padding), bias=False),
            nn.Conv2d(C_in, C_out, (kernel_length, 1), stride=1, padding=(padding, 0), bias=False),
            make_norm(C_out, norm, affine),
        )


class PoolBN(nn.Sequential):
    """3×3 avg (``count_include_pad=False``) or max pool followed by norm."""

    def __init__(self, pool_type: str, C: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, norm: str = "batch") -> None:
        if pool_type == "avg":
            pool: nn.Module = nn.AvgPool2d(kernel_size, stride, padding, count_include_pad=False)
        elif pool_type == "max":
            pool = nn.MaxPool2d(kernel_size, stride, padding)
        else:
            raise ValueError(f"pool_type must be 'avg' or 'max', got {pool_type!r}")
        super().__init__(pool, make_norm(C, norm, affine))


class FactorizedReduce(nn.Module):
    """Stride-2 reduction: ReLU → two 1×1 stride-2 convs (2nd on the one-pixel-shifted input) → concat → norm.

    The shift pads one zero row/column at the bottom/right and drops the first row/column, which
    also works for odd sizes (the 3×3 linear-region inputs).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True, norm: str = "batch") -> None:
        super().__init__()
        if C_out < 2:
            raise ValueError(f"FactorizedReduce needs at least 2 output channels, got {C_out}")
        half = C_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, half, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - half, 1, stride=2, padding=0, bias=False)
        self.norm = make_norm(C_out, norm, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.norm(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Identity(nn.Module):
    """Stride-1 ``skip_connect``; its own class so the final network can exempt it from drop path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class DropPath(nn.Module):
    """Per-sample path dropping (training mode only): ``x / keep * Bernoulli(keep)`` with a (B,1,1,1) mask."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x.div(keep).mul(mask)

    def extra_repr(self) -> str:
        return f"p={self.p}"

"""An inference copy of a trained network: BatchNorm folded into the convolution before it.

Why: in eval mode BatchNorm is a fixed per-channel affine map, so ``BN(conv(x))`` equals one
convolution with rescaled weights and a bias. Folding removes a full read and write of every
normalised activation, which is a large share of the time on a CPU where the small-channel
convolutions of these cells are memory-bound. The result equals the original network up to float
rounding (tested); the trained model itself is never modified.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from metantk_nas.space.blocks import FactorizedReduce


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return an eval-mode copy of ``model`` with every Conv2d→BatchNorm2d pair folded into one conv.

    Folded: a BatchNorm that directly follows a Conv2d inside an ``nn.Sequential`` (stem, ReLUConvBN,
    SepConv, FacConv) and the BatchNorm after the two half-convolutions of ``FactorizedReduce``.
    BatchNorms after pooling (``PoolBN``) have no convolution to absorb them and stay, as do BatchNorms
    without running statistics (MAML's Conv4 normalises every batch by its own statistics).
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        elif isinstance(module, FactorizedReduce) and isinstance(module.norm, nn.BatchNorm2d):
            _fold_factorized_reduce(module)
    return folded


def _fold_sequential(sequential: nn.Sequential) -> None:
    names = list(sequential._modules)
    for first, second in zip(names, names[1:]):
        conv, norm = sequential._modules[first], sequential._modules[second]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.running_mean is not None:
            sequential._modules[first] = fuse_conv_bn_eval(conv, norm)
            sequential._modules[second] = nn.Identity()


def _fold_factorized_reduce(block: FactorizedReduce) -> None:
    """The norm acts on ``cat([conv_1, conv_2])``: fold its first channels into conv_1, the rest into conv_2."""
    norm, half = block.norm, block.conv_1.out_channels
    for conv_name, channels in (("conv_1", slice(0, half)), ("conv_2", slice(half, None))):
        setattr(block, conv_name, fuse_conv_bn_eval(getattr(block, conv_name), _channel_slice(norm, channels)))
    block.norm = nn.Identity()


def _channel_slice(norm: nn.BatchNorm2d, channels: slice) -> nn.BatchNorm2d:
    """A BatchNorm2d holding the statistics and affine parameters of ``channels`` of ``norm``."""
    running_mean = norm.running_mean[channels]
    part = nn.BatchNorm2d(len(running_mean), eps=norm.eps, affine=norm.affine).eval()
    part.running_mean.copy_(running_mean)
    part.running_var.copy_(norm.running_var[channels])
    if norm.affine:
        part.weight.data.copy_(norm.weight.data[channels])
        part.bias.data.copy_(norm.bias.data[channels])
    return part.to(running_mean.device)

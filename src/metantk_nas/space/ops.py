"""Operation registry: every searchable operation is built by name through :func:`create_op` (§1.1)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from metantk_nas.space.blocks import DualSepConv, FacConv, FactorizedReduce, Identity, PoolBN, SepConv

#: ``builder(C, stride, affine, norm) -> nn.Module``
OpBuilder = Callable[[int, int, bool, str], nn.Module]

_OPS: dict[str, OpBuilder] = {}


def register_op(name: str) -> Callable[[OpBuilder], OpBuilder]:
    """Decorator that registers an operation builder under ``name`` (a duplicate name is an error)."""

    def decorator(builder: OpBuilder) -> OpBuilder:
        if name in _OPS:
            raise ValueError(f"operation {name!r} is already registered")
        _OPS[name] = builder
        return builder

    return decorator


def registered_ops() -> tuple[str, ...]:
    """Names of all registered operations, in registration order."""
    return tuple(_OPS)


def create_op(name: str, C: int, stride: int, affine: bool = True, norm: str = "batch") -> nn.Module:
    """Build operation ``name`` for ``C`` channels in and out with the given stride and normalisation."""
    try:
        builder = _OPS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; valid operations: {', '.join(_OPS)}") from None
    if stride not in (1, 2):
        raise ValueError(f"operation {name!r}: stride must be 1 or 2, got {stride}")
    return builder(C, stride, affine, norm)


@register_op("skip_connect")
def _skip_connect(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine, norm)


@register_op("sep_conv_3x3")
def _sep_conv_3x3(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return DualSepConv(C, C, 3, stride, 1, 1, affine, norm)


@register_op("dil_conv_3x3")
def _dil_conv_3x3(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return SepConv(C, C, 3, stride, 2, 2, affine, norm)


@register_op("avg_pool_3x3BN")
def _avg_pool_3x3bn(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return PoolBN("avg", C, 3, stride, 1, affine, norm)


@register_op("max_pool_3x3BN")
def _max_pool_3x3bn(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return PoolBN("max", C, 3, stride, 1, affine, norm)


@register_op("conv_1x5_5x1")
def _conv_1x5_5x1(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return FacConv(C, C, 5, stride, 2, affine, norm)


@register_op("conv_3x3")
def _conv_3x3(C: int, stride: int, affine: bool, norm: str) -> nn.Module:
    return SepConv(C, C, 3, stride, 1, 1, affine, norm)

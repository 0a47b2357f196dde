"""Operations, search supernet, thin network and final network (official §1.1–1.5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from metantk_nas.space import (
    EDGES,
    PRIMITIVES,
    FinalNetwork,
    Genotype,
    SearchSupernet,
    all_alive_mask,
    build_thin_network,
    count_parameters,
    create_op,
    load_genotype,
)
from metantk_nas.space.blocks import DropPath, FactorizedReduce, Identity
from metantk_nas.space.ops import registered_ops
from metantk_nas.space.skeleton import cell_plan, reduction_cells
from metantk_nas.space.supernet import layer_plan


def _op_params(name: str, C: int, stride: int) -> int:
    """Per-op parameter counts of §1.1 (BatchNorm/GroupNorm affine = 2C)."""
    separable = 9 * C + C * C + 2 * C
    return {
        "skip_connect": 0 if stride == 1 else C * C + 2 * C,
        "sep_conv_3x3": 2 * separable,
        "dil_conv_3x3": separable,
        "conv_3x3": separable,
        "avg_pool_3x3BN": 2 * C,
        "max_pool_3x3BN": 2 * C,
        "conv_1x5_5x1": 10 * C * C + 2 * C,
    }[name]


@pytest.mark.parametrize("norm", ["batch", "group"])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_shape_and_size(norm: str, stride: int) -> None:
    C = 16
    for size in (8, 9):  # odd sizes occur in the 3×3 linear-region inputs
        x = torch.randn(2, C, size, size)
        for name in PRIMITIVES:
            op = create_op(name, C, stride, affine=True, norm=norm).eval()
            expected = -(-size // stride)
            assert op(x).shape == (2, C, expected, expected), name
            assert count_parameters(op) == _op_params(name, C, stride), name
            kinds = {type(m) for m in op.modules()}
            assert (nn.GroupNorm in kinds) == (norm == "group" and name != "skip_connect" or
                                               norm == "group" and stride == 2), name
            assert nn.BatchNorm2d not in kinds or norm == "batch"


def test_create_op_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown operation 'conv_9x9'.*sep_conv_3x3"):
        create_op("conv_9x9", 16, 1)
    with pytest.raises(ValueError, match="stride"):
        create_op("conv_3x3", 16, 3)


def test_conv_3x3_is_depthwise_separable() -> None:
    convs = [m for m in create_op("conv_3x3", 16, 1).modules() if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [16, 1] and convs[0].kernel_size == (3, 3)
    fac = [m for m in create_op("conv_1x5_5x1", 16, 2).modules() if isinstance(m, nn.Conv2d)]
    assert fac[0].kernel_size == (1, 5) and fac[0].stride == (2, 2) and fac[1].kernel_size == (5, 1)


def test_primitives_are_the_registered_ops_in_mask_column_order() -> None:
    """The mask columns (PRIMITIVES, torch-free) and the op registry (what create_op builds) name the same ops."""
    assert registered_ops() == PRIMITIVES


def test_layer_plan_matches_official_reductions() -> None:
    assert [i for i, (_, r) in enumerate(layer_plan(5)) if r] == [1, 3]
    assert [i for i, (_, r) in enumerate(layer_plan(8)) if r] == [2, 5]
    assert [m for m, _ in layer_plan(8)] == [1, 1, 2, 2, 2, 4, 4, 4]
    assert layer_plan(2) == [(1, False), (2, True)]
    with pytest.raises(ValueError, match="n_cells"):
        layer_plan(6)


def test_one_reduction_formula_for_both_networks() -> None:
    assert reduction_cells(5) == (1, 3) and reduction_cells(8) == (2, 5) and reduction_cells(7) == (2, 4)
    for n in (5, 8, 11, 14):  # the supernet's depths 3N+2: positions N and 2N+1 = floor(L/3), floor(2L/3)
        assert layer_plan(n) == cell_plan(n)
        assert [i for i, (_, r) in enumerate(layer_plan(n)) if r] == [(n - 2) // 3, 2 * ((n - 2) // 3) + 1]
    genotype = load_genotype("metanas/in-v2")
    for n in (3, 5, 6, 7, 8):
        final = FinalNetwork(genotype, C=4, n_cells=n, num_classes=2)
        assert [cell.reduction for cell in final.cells] == [r for _, r in cell_plan(n)]
    with pytest.raises(ValueError, match="at least 3"):
        reduction_cells(2)


@pytest.fixture(scope="module")
def _shared_supernet() -> SearchSupernet:
    torch.manual_seed(0)
    return SearchSupernet(C=16, n_cells=5, num_classes=10, norm="group").eval()


@pytest.fixture()
def supernet(_shared_supernet: SearchSupernet) -> Iterator[SearchSupernet]:
    """One instance for the module (built once); every test gets it with all ops alive, whatever the
    previous test did to its masks, and leaves it so even when it fails."""
    _shared_supernet.set_masks(all_alive_mask(), all_alive_mask())
    try:
        yield _shared_supernet
    finally:
        _shared_supernet.set_masks(all_alive_mask(), all_alive_mask())


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _random_mask(seed: int) -> torch.Tensor:
    mask = torch.rand(9, 7, generator=torch.Generator().manual_seed(seed)) < 0.5
    mask[:, 0] |= ~mask.any(dim=1)  # keep every edge alive
    return mask


def test_supernet_structure(supernet: SearchSupernet) -> None:
    assert [c.reduction for c in supernet.cells] == [False, True, False, True, False]
    assert supernet.num_features == 3 * 4 * 16
    assert not any(isinstance(m, nn.BatchNorm2d) for m in supernet.modules())
    assert all(m.num_groups == 16 for m in supernet.modules() if isinstance(m, nn.GroupNorm))
    for cell in supernet.cells:
        strides = [edge.stride for edge in cell.edges]
        assert strides == [2 if cell.reduction and source < 2 else 1 for _, source in EDGES]


def test_same_mask_gives_identical_output_on_one_instance(supernet: SearchSupernet, images: torch.Tensor) -> None:
    modules_before = [id(m) for m in supernet.modules()]
    with torch.no_grad():
        features = supernet.forward_features(images)
        logits = supernet(images)
        assert features.shape == (2, 192) and logits.shape == (2, 10)
        assert torch.equal(supernet.forward_head(features), logits)
        again = supernet(images)
        supernet.set_masks(_random_mask(1), _random_mask(2))
        other = supernet(images)
        supernet.set_masks(all_alive_mask(), all_alive_mask())
        back = supernet(images)
    assert torch.equal(logits, again) and torch.equal(logits, back)
    assert not torch.allclose(logits, other)
    assert [id(m) for m in supernet.modules()] == modules_before


def test_removing_one_op_changes_the_output(supernet: SearchSupernet, images: torch.Tensor) -> None:
    with torch.no_grad():
        supernet.set_masks(all_alive_mask(), all_alive_mask())
        full = supernet(images)
        for reduce in (False, True):
            mask = all_alive_mask()
            mask[4, PRIMITIVES.index("conv_1x5_5x1")] = False
            supernet.set_masks(all_alive_mask(), mask) if reduce else supernet.set_masks(mask, all_alive_mask())
            assert not torch.allclose(full, supernet(images))
            assert torch.equal(supernet.masks[int(reduce)], mask)
    supernet.set_masks(all_alive_mask(), all_alive_mask())


def test_mixed_edge_is_uniform_mean_and_dead_edge_is_zero(supernet: SearchSupernet) -> None:
    x = torch.randn(2, 32, 9, 9)
    reduce_cell = supernet.cells[1]
    with torch.no_grad():
        for edge in (reduce_cell.edges[0], reduce_cell.edges[4]):  # stride 2 and stride 1
            out = edge(x, (1, 5))
            assert torch.equal(out, 0.5 * edge.ops[1](x) + 0.5 * edge.ops[5](x))
            dead = edge(x, ())
            side = -(-9 // edge.stride)
            assert dead.shape == (2, 32, side, side) and torch.count_nonzero(dead) == 0


def test_all_removed_edge_contributes_exactly_zero(supernet: SearchSupernet) -> None:
    """Node 2 of a reduction cell with edge (2←0) removed equals its (2←1) edge alone."""
    normal, reduce = all_alive_mask(), all_alive_mask()
    reduce[0, :] = False
    supernet.set_masks(normal, reduce)
    cell = supernet.cells[1]
    s0, s1 = torch.randn(2, 16, 16, 16), torch.randn(2, 48, 16, 16)
    with torch.no_grad():
        out = cell(s0, s1, supernet._alive[True])
        node2 = cell.edges[1](cell.preprocess1(s1), tuple(range(7)))
        assert torch.equal(out[:, :32], node2)
        supernet(torch.randn(1, 3, 8, 8))  # the whole network runs with a dead edge
    supernet.set_masks(all_alive_mask(), all_alive_mask())


def test_removed_ops_are_not_executed() -> None:
    torch.manual_seed(0)
    net = SearchSupernet(C=16, n_cells=5, num_classes=5, norm="group")
    net.set_masks(_random_mask(3), _random_mask(4))
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    alive = {name for name, _ in net.named_alive_parameters()}
    for name, param in net.named_parameters():
        assert (param.grad is not None) == (name in alive), name
    assert count_parameters(p for _, p in net.named_alive_parameters()) < count_parameters(net)


def test_mask_validation(supernet: SearchSupernet) -> None:
    with pytest.raises(ValueError, match="dtype bool"):
        supernet.set_masks(torch.zeros(9, 7), all_alive_mask())
    with pytest.raises(ValueError, match=r"reduce mask must have shape \(9, 7\)"):
        supernet.set_masks(all_alive_mask(), torch.ones(9, 8, dtype=torch.bool))


def test_masks_follow_state_dict(supernet: SearchSupernet, images: torch.Tensor) -> None:
    other = SearchSupernet(C=16, n_cells=5, num_classes=10, norm="group").eval()
    supernet.set_masks(_random_mask(5), _random_mask(6))
    other.load_state_dict(supernet.state_dict())
    with torch.no_grad():
        assert torch.equal(other(images), supernet(images))
    supernet.set_masks(all_alive_mask(), all_alive_mask())


def test_full_size_supernet_parameter_count() -> None:
    """≈12.85 M (5 cells) with every op alive at C=48 (official §1.4a)."""
    assert round(count_parameters(SearchSupernet(C=48, n_cells=5, num_classes=64)) / 1e6, 2) == 12.85


def test_thin_network() -> None:
    net = build_thin_network(num_classes=10)
    assert not any(isinstance(m, nn.GroupNorm) for m in net.modules())
    assert isinstance(net.stem, nn.Identity) and net.num_features == 6
    assert [c.reduction for c in net.cells] == [False, True]
    sizes = []
    net.cells[1].register_forward_hook(lambda module, inputs, output: sizes.append(tuple(output.shape)))
    x = torch.randn(4, 1, 3, 3)
    features = net.forward_features(x)
    logits = net.forward_head(features)
    assert features.shape == (4, 6) and logits.shape == (4, 10) and sizes == [(4, 6, 2, 2)]


# --------------------------------------------------------------------------------------------- final network


def _cell_shapes(model: FinalNetwork, x: torch.Tensor) -> list[tuple[int, int]]:
    shapes: list[tuple[int, int]] = []
    hooks = [cell.register_forward_hook(lambda m, i, o: shapes.append((o.shape[1], o.shape[2])))
             for cell in model.cells]
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    for hook in hooks:
        hook.remove()
    assert features.shape == (1, 576) and logits.shape == (1, 64)
    return shapes


def test_final_network_shapes_5_cells() -> None:
    model = FinalNetwork(load_genotype("metantk-nas/mini-5cell-1"), n_cells=5).eval()
    shapes = _cell_shapes(model, torch.randn(1, 3, 84, 84))
    assert shapes == [(144, 84), (288, 42), (288, 42), (576, 21), (576, 21)]


def test_final_network_shapes_8_cells() -> None:
    model = FinalNetwork(load_genotype("metantk-nas/mini-8cell-1"), n_cells=8).eval()
    shapes = _cell_shapes(model, torch.randn(1, 3, 84, 84))
    channels = [144, 144, 288, 288, 288, 576, 576, 576]
    assert shapes == list(zip(channels, [84, 84, 42, 42, 42, 21, 21, 21]))


SKIPPY = Genotype.parse(
    "Genotype(normal=[[('skip_connect', 0), ('sep_conv_3x3', 1)], [('max_pool_3x3BN', 0), ('skip_connect', 2)], "
    "[('conv_3x3', 2), ('dil_conv_3x3', 3)]], normal_concat=[2, 3, 4], "
    "reduce=[[('skip_connect', 0), ('skip_connect', 1)], [('avg_pool_3x3BN', 1), ('skip_connect', 2)], "
    "[('conv_1x5_5x1', 0), ('sep_conv_3x3', 3)]], reduce_concat=[2, 3, 4])"
)


def test_drop_path_wraps_every_non_identity_op() -> None:
    model = FinalNetwork(SKIPPY, C=16, n_cells=5, num_classes=5, drop_path_prob=0.2)
    for cell in model.cells:
        for row in cell.nodes:
            for op in row:
                assert isinstance(op, Identity) or isinstance(op[1], DropPath)
    identities = sum(isinstance(m, Identity) for m in model.modules())
    # stride-1 skips: 2 per normal cell (×3), 1 per reduction cell (×2); stride-2 skips are FactorizedReduce
    assert identities == 3 * 2 + 2 * 1
    reduce_skip = model.cells[1].nodes[0][0]
    assert isinstance(reduce_skip[0], FactorizedReduce) and isinstance(reduce_skip[1], DropPath)
    drops = [m for m in model.modules() if isinstance(m, DropPath)]
    assert len(drops) == 5 * 6 - identities and all(d.p == 0.2 for d in drops)
    model.drop_path_prob = 0.3
    assert all(d.p == 0.3 for d in drops)
    with pytest.raises(ValueError, match="drop_path_prob"):
        model.drop_path_prob = 1.0


def test_drop_path_per_sample() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.randn(64, 4, 3, 3)
    assert torch.equal(drop.eval()(x), x)
    y = drop.train()(x)
    kept = [bool(torch.equal(y[i], x[i] / 0.5)) for i in range(64)]
    dropped = [bool(torch.count_nonzero(y[i]) == 0) for i in range(64)]
    assert all(k or d for k, d in zip(kept, dropped)) and 10 < sum(kept) < 54


def test_final_network_trains_every_parameter_and_resets_classifier() -> None:
    torch.manual_seed(0)
    model = FinalNetwork(SKIPPY, C=16, n_cells=5, num_classes=7, drop_path_prob=0.1)
    assert not any("alpha" in name for name, _ in model.named_parameters())
    model.train()
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.reset_classifier(5)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert model.forward_features(torch.randn(2, 3, 16, 16)).shape == (2, 192)


def test_final_network_channels_last() -> None:
    torch.manual_seed(0)
    model = FinalNetwork(load_genotype("metanas/og-v2"), C=16, n_cells=5, num_classes=5).eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        result = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(result, reference, rtol=1e-4, atol=1e-5)

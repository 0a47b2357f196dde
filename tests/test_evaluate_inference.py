"""BatchNorm folding: the inference copy computes the trained network's features, with fewer norms."""

import torch
from torch import nn

from metantk_nas.evaluate.inference import fold_batchnorm
from metantk_nas.space import FinalNetwork, Genotype
from metantk_nas.space.blocks import PoolBN
from metantk_nas.space.primitives import PRIMITIVES

#: Every operation appears, skip_connect also strided (a FactorizedReduce), so every block kind is folded.
_GENOTYPE = Genotype.from_dict({
    "normal": [[[PRIMITIVES[0], 0], [PRIMITIVES[1], 1]], [[PRIMITIVES[2], 0], [PRIMITIVES[3], 1]],
               [[PRIMITIVES[4], 2], [PRIMITIVES[5], 3]]],
    "normal_concat": [2, 3, 4],
    "reduce": [[[PRIMITIVES[6], 0], [PRIMITIVES[5], 1]], [[PRIMITIVES[1], 0], [PRIMITIVES[4], 1]],
               [[PRIMITIVES[3], 0], [PRIMITIVES[2], 2]]],
    "reduce_concat": [2, 3, 4],
})


def _trained_looking_network() -> FinalNetwork:
    """A network whose BatchNorms hold non-trivial statistics and affine parameters, as after training."""
    torch.manual_seed(0)
    model = FinalNetwork(_GENOTYPE, C=8, n_cells=5, num_classes=10)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def test_folded_network_matches_the_original_features() -> None:
    model = _trained_looking_network()
    folded = fold_batchnorm(model)
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        expected, got = model.forward_features(x), folded.forward_features(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_only_pool_norms_remain_and_the_original_is_untouched() -> None:
    model = _trained_looking_network().train()
    norms_before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    pool_norms = sum(isinstance(m, PoolBN) for m in folded.modules())
    assert pool_norms > 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == pool_norms
    assert not folded.training
    assert model.training and sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == norms_before

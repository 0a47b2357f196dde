"""Linear-region counting (official §3): exact unique-pattern count and the official LR inputs."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from metantk_nas.proxies.linear_regions import activation_codes, linear_regions, region_inputs
from metantk_nas.space import build_thin_network

pytestmark = pytest.mark.usefixtures("one_thread")


class OneLayer(nn.Module):
    """x (n,1,1,2) → ReLU(conv1×1) with 3 units: 3 lines through the 2-D plane."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        with torch.no_grad():
            self.conv.weight.copy_(weight.view(3, 2, 1, 1))
            self.conv.bias.copy_(bias)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x.permute(0, 3, 1, 2)))


def test_one_layer_grid_matches_hand_count():
    # Units x>0, y>0, x+y>1 on a fine grid of [-1,2]²: the lines x=0, y=0, x+y=1 cut the square into 7
    # regions (the line x+y=1 misses the quadrant x<0,y<0), hence 7 patterns.
    net = OneLayer(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0.0, 0.0, -1.0]))
    axis = torch.linspace(-1, 2, 61) + 0.013
    grid = torch.tensor(list(itertools.product(axis.tolist(), axis.tolist()))).view(-1, 1, 1, 2)
    assert linear_regions(net, grid) == 7
    assert linear_regions(net, grid[(grid[..., 0] > 0).flatten() & (grid[..., 1] > 0).flatten()]) == 2


def test_thin_network_count_equals_brute_force():
    torch.manual_seed(0)
    thin = build_thin_network(num_classes=5)
    inputs = torch.randn(500, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    inputs = torch.cat([inputs, inputs[:100]])  # duplicates must not add regions
    count = linear_regions(thin, inputs)
    codes = np.unpackbits(activation_codes(thin, inputs), axis=1)
    brute = sum(1 for i in range(len(codes)) if not any(np.array_equal(codes[i], codes[j]) for j in range(i)))
    assert count == brute
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)  # the official Σ 1/n_i formula
    assert count == pytest.approx(np.sum(1.0 / (hamming == 0).sum(1)))
    assert 1 < count <= 500
    assert thin.training  # mode restored
    assert not any(m._forward_hooks for m in thin.modules())  # hooks removed


def test_region_inputs_are_the_official_crops():
    """Each input, recomputed one at a time from the same draws: image, then row, column and channel of a
    3×3 crop of the image resized to 32×32 (PIL's float bilinear resize here) and normalised with the RFS
    miniImageNet statistics."""
    images = np.random.default_rng(0).integers(0, 256, size=(20, 84, 84, 3), dtype=np.uint8)
    n = 1000
    index = np.arange(n) % 20
    crops = region_inputs(images, index, torch.Generator().manual_seed(3))
    assert crops.shape == (n, 1, 3, 3) and torch.equal(crops, region_inputs(images, index, torch.Generator().manual_seed(3)))

    draws = torch.Generator().manual_seed(3)
    top, left, channel = (torch.randint(0, high, (n,), generator=draws) for high in (30, 30, 3))
    resized = np.stack([[np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                                    .resize((32, 32), Image.Resampling.BILINEAR)) for c in range(3)] for image in images])
    mean = np.array([120.39586422, 115.59361427, 104.54012653])
    std = np.array([70.68188272, 68.27635443, 72.54505529])
    expected = np.stack([
        (resized[i, c, t:t + 3, l:l + 3] - mean[c]) / std[c]
        for i, t, l, c in zip(index.tolist(), top.tolist(), left.tolist(), channel.tolist())
    ])
    np.testing.assert_allclose(crops[:, 0].numpy(), expected, rtol=0, atol=1e-5)
    assert set(channel.tolist()) == {0, 1, 2}  # every choice is exercised
    with pytest.raises(ValueError, match="uint8"):
        region_inputs(images.astype(np.float32), index, torch.Generator())
    with pytest.raises(ValueError, match="image indices"):
        region_inputs(images, np.array([0, 20]), torch.Generator())


def test_model_without_4d_relu_is_rejected():
    with pytest.raises(ValueError, match="ReLU"):
        linear_regions(nn.Sequential(nn.Flatten(), nn.ReLU()), torch.randn(4, 1, 3, 3))

"""Tensor transforms: shapes, ranges, torchvision/PIL agreement and determinism under a generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from metantk_nas.data import transforms as T

IMAGES = np.random.default_rng(0).integers(0, 256, size=(6, 84, 84, 3), dtype=np.uint8)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_to_tensor_and_normalize():
    x = T.to_tensor(IMAGES)
    assert x.shape == (6, 3, 84, 84) and x.dtype == torch.float32
    np.testing.assert_allclose(x[2, 1].numpy(), IMAGES[2, :, :, 1] / 255.0, atol=1e-7)
    y = T.normalize(x, T.MINI_IMAGENET_MEAN, T.MINI_IMAGENET_STD)
    np.testing.assert_allclose(y[0, 0].numpy(), (x[0, 0].numpy() - T.MINI_IMAGENET_MEAN[0]) / T.MINI_IMAGENET_STD[0],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="uint8 N×H×W×3"):
        T.to_tensor(IMAGES.astype(np.float32))


def test_colour_jitter_matches_torchvision_functional():
    x = T.to_tensor(IMAGES[:4])
    factors = torch.tensor([[1.3, 0.7, 1.2], [0.6, 1.4, 0.8], [1.0, 1.1, 0.6], [1.4, 0.6, 1.4]])
    order = torch.tensor([[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]])
    ours = T.jitter_with(x, factors, order)
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)
    for i in range(4):
        expected = x[i]
        for op in order[i].tolist():
            expected = ops[op](expected, float(factors[i, op]))
        torch.testing.assert_close(ours[i], expected, atol=1e-4, rtol=0)


def test_rfs_train_augment_is_seeded_and_in_range():
    x = T.to_tensor(IMAGES)
    a, b, c = (T.rfs_train_augment(x, _gen(s)) for s in (1, 1, 2))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    same = T.rfs_train_augment(x[:1].repeat(8, 1, 1, 1), _gen(0)).flatten(1)
    assert len({tuple(row.tolist()) for row in same}) == 8  # one image, eight different augmentations


def test_random_crop_pads_with_zeros_and_shifts():
    ones = torch.ones(200, 3, 16, 16)
    cropped = T.random_crop(ones, _gen(0), padding=8)
    assert cropped.shape == ones.shape
    assert set(torch.unique(cropped).tolist()) == {0.0, 1.0}
    x = torch.arange(16.0).repeat(1, 3, 16, 1)
    shifted = T.random_crop(x, _gen(3), padding=4)
    row = shifted[0, 0, 8]
    nonzero = row[row > 0]
    assert torch.all(nonzero[1:] - nonzero[:-1] == 1)  # a translated copy of the input, not resampled


def test_random_flip_flips_about_half():
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(400, 3, 2, 1)
    flipped = T.random_flip(x, _gen(0))
    is_flipped = flipped[:, 0, 0, 0] == 7
    assert torch.all(is_flipped | (flipped[:, 0, 0, 0] == 0))
    assert 150 < int(is_flipped.sum()) < 250


def test_search_transform_matches_pil_resize_and_normalises():
    out = T.search_transform(IMAGES, augment=False, generator=None)
    assert out.shape == (6, 3, 32, 32)
    back = (out * torch.tensor(T.CIFAR10_STD).view(1, 3, 1, 1) + torch.tensor(T.CIFAR10_MEAN).view(1, 3, 1, 1))
    back = back.permute(0, 2, 3, 1).numpy() * 255
    # PIL's bilinear resize in float (mode F): the same filter, nothing rounded
    exact = np.stack([np.stack([np.asarray(Image.fromarray(im[..., c].astype(np.float32), mode="F")
                                           .resize((32, 32), Image.Resampling.BILINEAR)) for c in range(3)], -1)
                      for im in IMAGES])
    np.testing.assert_allclose(back, exact, rtol=0, atol=2e-3)
    # the official uint8 path rounds after each of its two passes: < 1/255 away (docstring: 0.975/255 measured)
    pil = np.stack([np.asarray(Image.fromarray(im).resize((32, 32), Image.Resampling.BILINEAR)) for im in IMAGES])
    assert np.abs(back - pil).max() < 1.0
    a = T.search_transform(IMAGES, augment=True, generator=_gen(5))
    b = T.search_transform(IMAGES, augment=True, generator=_gen(5))
    assert torch.equal(a, b) and not torch.equal(a, out)
    with pytest.raises(ValueError, match="Generator"):
        T.search_transform(IMAGES, augment=True, generator=None)


def test_normalisation_statistics_are_those_of_the_datasets():
    """In [0, 1] units and RGB order, against statistics measured on the datasets by others.

    CIFAR-10 (the search transform, TE-NAS heritage): the training set's per-channel mean and std
    (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616). miniImageNet is a subset of ImageNet: its RFS
    mean lies within 0.02 of ImageNet's (0.485, 0.456, 0.406), and its std (of 84×84 images) above ImageNet's
    (0.229, 0.224, 0.225). A swapped channel, a 0..255 scale or a variance for a std fails.
    """
    np.testing.assert_allclose(T.CIFAR10_MEAN, (0.4914, 0.4822, 0.4465), atol=3e-4)
    np.testing.assert_allclose(T.CIFAR10_STD, (0.2470, 0.2435, 0.2616), atol=3e-4)
    np.testing.assert_allclose(T.MINI_IMAGENET_MEAN, (0.485, 0.456, 0.406), atol=0.02)
    assert all(0.229 < s < 0.3 for s in T.MINI_IMAGENET_STD)

"""Linear-region count of the thin network (official §3, from TE-NAS).

The count is the number of distinct binary ReLU activation patterns over a batch. The official code
builds an N×N float16 Hamming matrix; here the codes are bit-packed and deduplicated exactly
(``np.unique`` over rows), O(N·M) memory for any batch size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from metantk_nas.data.transforms import MINI_IMAGENET_MEAN, MINI_IMAGENET_STD, normalize, resize, to_tensor


def activation_codes(model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """Bit-packed ReLU patterns (n, ⌈M/8⌉) uint8 of every ``nn.ReLU`` applied to a 4-D tensor.

    Runs in train mode under no_grad (BatchNorm uses the batch statistics, as the official counter);
    the hooks are registered once and removed afterwards. One walk of the module tree finds the ReLUs
    and the modes; the mode is switched (and each module's own mode restored) only when some module is
    not already training, so the search's thin network, always in train mode, pays no ``train()`` walks.
    """
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if args[0].dim() == 4:
            captured.append((output > 0).flatten(1))

    modules = list(model.modules())
    modes = [m.training for m in modules]
    switch = not all(modes)
    handles = [m.register_forward_hook(hook) for m in modules if isinstance(m, nn.ReLU)]
    try:
        if switch:
            model.train()
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        if switch:
            for module, mode in zip(modules, modes, strict=True):
                module.training = mode
    if not captured:
        raise ValueError("the model applies no nn.ReLU to a 4-D tensor: no activation pattern to count")
    bits = torch.cat(captured, dim=1).cpu().numpy()
    return np.packbits(bits, axis=1)


def linear_regions(thin_model: nn.Module, inputs: torch.Tensor) -> int:
    """Number of distinct ReLU activation patterns of ``thin_model`` over ``inputs`` (exact)."""
    if inputs.dim() != 4 or inputs.shape[0] < 1:
        raise ValueError(f"inputs must be a non-empty (n, C, H, W) batch, got shape {tuple(inputs.shape)}")
    return int(np.unique(activation_codes(thin_model, inputs), axis=0).shape[0])


def shuffled_batches(n_items: int, batch_size: int, n_batches: int, generator: torch.Generator) -> list[np.ndarray]:
    """``n_batches`` consecutive batches of a shuffled, drop-last loader over ``n_items`` items (official §3).

    The official region inputs come from ``DataLoader(shuffle=True, drop_last=True)`` batches, an iterator
    re-created when exhausted: an epoch is a permutation of the items, its consecutive ``batch_size`` slices
    are the batches, an incomplete tail is dropped and the next epoch is a new permutation. So inputs never
    repeat within an epoch (drawn without replacement). The permutations come from ``generator``.
    """
    if not 1 <= batch_size <= n_items:
        raise ValueError(f"batch size {batch_size} must be in 1..{n_items} (the number of images to draw from)")
    batches: list[np.ndarray] = []
    epoch = np.empty(0, dtype=np.int64)
    while len(batches) < n_batches:
        if len(epoch) < batch_size:
            epoch = torch.randperm(n_items, generator=generator).numpy()
        batches.append(epoch[:batch_size])
        epoch = epoch[batch_size:]
    return batches


def region_inputs(images_uint8_nhwc: np.ndarray, index: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """The official linear-region inputs (§3) of the images ``index``: crops of shape (len(index), 1, 3, 3).

    Each input: its image, bilinear resize to 32×32, a random 3×3 crop (no padding), normalised with the
    mini-ImageNet statistics, one random channel kept. The crops and channels come from ``generator``; which
    images, from the caller (the search: :func:`shuffled_batches`).
    """
    images = np.asarray(images_uint8_nhwc)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
    index = np.asarray(index, dtype=np.int64)
    n = len(index)
    if index.ndim != 1 or n < 1 or index.min() < 0 or index.max() >= len(images):
        raise ValueError(f"index must be a non-empty 1-D array of image indices in 0..{len(images) - 1}")
    order = np.argsort(index, kind="stable")
    picked = torch.empty(n, 3, images.shape[1], images.shape[2])
    picked[torch.from_numpy(order)] = to_tensor(images[index[order]])  # sorted, memmap-friendly read
    normalised = normalize(resize(picked, 32), MINI_IMAGENET_MEAN, MINI_IMAGENET_STD)
    top = torch.randint(0, 30, (n,), generator=generator)
    left = torch.randint(0, 30, (n,), generator=generator)
    channel = torch.randint(0, 3, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(3))[:, :, None]  # (n, 3, 1)
    cols = (left[:, None] + torch.arange(3))[:, None, :]  # (n, 1, 3)
    crops = normalised[torch.arange(n)[:, None, None], channel[:, None, None], rows, cols]
    return crops.unsqueeze(1).contiguous()

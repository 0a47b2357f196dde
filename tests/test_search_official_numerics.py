"""The official rounding of ΔC and ΔR at half-way cases, and region inputs drawn without replacement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import metantk_nas.proxies
from metantk_nas.proxies import shuffled_batches
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import _delta
from metantk_nas.search.measure import Measurer
from metantk_nas.search.ranking import DELTA_ROUNDING, round_decimals


@pytest.mark.parametrize(("origin", "candidate", "numpy_c", "python_r"), [
    (400, 399, 0.002, 0.003),  # 0.0025: NumPy rounds half to even, Python sees 0.00250000000000000005
    (400, 401, -0.002, -0.003),
    (400, 397, 0.008, 0.007),  # 0.0075: 7.5 → 8 in NumPy; stored as 0.00749999… for Python
    (2000, 1999, 0.0, 0.001),  # 0.0005
    (800, 798, 0.002, 0.003),  # 0.0025 again, from other counts
    (400, 398, 0.005, 0.005),  # not half-way: both agree
])
def test_half_way_rounding_of_delta_c_and_delta_r(origin: int, candidate: int, numpy_c: float,
                                                    python_r: float) -> None:
    """ΔC is rounded as the official NumPy float (round(np.float64, 3)), ΔR as the official Python float."""
    assert DELTA_ROUNDING == {"c": "numpy", "r": "python"}
    assert _delta(float(origin), float(candidate), "relative", 3, DELTA_ROUNDING["c"], "ntk") == numpy_c
    assert _delta(origin, candidate, "relative", 3, DELTA_ROUNDING["r"], "linear-regions") == python_r
    value = (origin - candidate) / origin
    assert round_decimals(value, 3, "numpy") == float(np.round(value, 3)) == float(round(np.float64(value), 3))
    assert round_decimals(value, 3, "python") == round(value, 3)
    assert _delta(origin, candidate, "absolute", 3, "numpy", "ntk") == origin - candidate  # no rounding
    with pytest.raises(ValueError, match="rounding"):
        round_decimals(value, 3, "bankers")


def test_shuffled_batches_are_drawn_without_replacement() -> None:
    batches = shuffled_batches(10, 3, 7, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [3] * 7
    epoch1, epoch2 = np.concatenate(batches[:3]), np.concatenate(batches[3:6])
    assert len(set(epoch1.tolist())) == 9 and len(set(epoch2.tolist())) == 9  # no repeat within an epoch
    # drop_last: the 10th item of each permutation is never used, and the next epoch is a new permutation
    again = shuffled_batches(10, 3, 7, torch.Generator().manual_seed(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, shuffled_batches(10, 3, 7,
                                                                                 torch.Generator().manual_seed(1))))
    with pytest.raises(ValueError, match="batch size 11"):
        shuffled_batches(10, 11, 1, torch.Generator())


def test_measurer_region_inputs_use_distinct_images(monkeypatch: pytest.MonkeyPatch) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(50, 8, 8, 3), dtype=np.uint8)
    train = type("Split", (), {"images": images, "labels": np.arange(50) % 5, "num_classes": 5,
                               "__len__": lambda self: 50})()
    cfg = SearchConfig(method="linear-regions", region_batches=3, region_batch_size=16, device="cpu")
    measurer = Measurer(cfg, None, train, torch.device("cpu"))
    seen: list[np.ndarray] = []
    real = metantk_nas.proxies.region_inputs

    def spy(images_, index, generator):
        seen.append(np.asarray(index))
        return real(images_, index, generator)

    monkeypatch.setattr(metantk_nas.proxies, "region_inputs", spy)
    first = measurer.region_inputs(7)
    assert [tuple(x.shape) for x in first] == [(16, 1, 3, 3)] * 3
    drawn = np.concatenate(seen)
    assert len(set(drawn.tolist())) == 48  # 3 × 16 distinct images of 50: without replacement
    again = measurer.region_inputs(7)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # the same key, the same inputs
    assert np.array_equal(np.concatenate(seen[3:]), drawn)
    measurer.region_inputs(8)
    assert not np.array_equal(np.concatenate(seen[6:]), drawn)

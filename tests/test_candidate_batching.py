"""Candidate batching: K masks scored in one batched forward+backward give the one-at-a-time values.

Sizes: the NTK (te-nas) at the CI miniature's (4 channels, 8×8, 2 images); the MetaNTK at 8 channels and
16×16. At 4 channels and 8×8 the supernet's GroupNorm normalises single channels of 2×2 maps, which
amplifies float32 rounding (a convolution's blocking changes with the batch size) about 10³-fold through
the MetaNTK assembly, so there the one-at-a-time value itself moves by ~1e-3 relative with the batch size
or memory layout; at 16×16 the same comparison holds to ~1e-6.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from metantk_nas.data.store import open_split
from metantk_nas.kernels import GroupedLinear
from metantk_nas.kernels._gram import plan_chunks
from metantk_nas.kernels.ntk import empirical_ntk, grouped_empirical_ntk
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.engine import run_search
from metantk_nas.search.measure import Measurer, Request
from metantk_nas.search.trace import read_trace
from metantk_nas.space.supernet import SearchSupernet, all_alive_mask

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-5


def _requests(n: int, seed: int = 0) -> list[Request]:
    rng = np.random.default_rng(seed)
    out = []
    for index in range(n):
        masks = {cell: all_alive_mask() & torch.from_numpy(rng.random((9, 7)) < 0.6) for cell in ("normal", "reduce")}
        out.append((masks, 10 + index, 100 + index))
    return out


def _relative(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))


def test_plan_chunks_packs_whole_groups_or_splits_one() -> None:
    assert plan_chunks(10, 2, 8, pack=4) == [[(g, 0, 2) for g in range(0, 4)], [(g, 0, 2) for g in range(4, 7)],
                                             [(g, 0, 2) for g in range(7, 10)]]
    assert plan_chunks(2, 5, 2) == [[(0, 0, 2)], [(0, 2, 2)], [(0, 4, 1)], [(1, 0, 2)], [(1, 2, 2)], [(1, 4, 1)]]
    with pytest.raises(ValueError):
        plan_chunks(0, 2, 2)


def test_grouped_linear_is_each_groups_linear() -> None:
    torch.manual_seed(0)
    linears = [nn.Linear(6, 3) for _ in range(3)]
    x = torch.randn(7, 6)
    pieces = [(2, 0, 3), (0, 0, 4)]
    out = GroupedLinear(linears)(x, pieces)
    torch.testing.assert_close(out, torch.cat([linears[2](x[:3]), linears[0](x[3:])]), rtol=0, atol=0)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_grouped_ntk_equals_one_at_a_time(chunk_size: int | None) -> None:
    """Whole groups packed in one micro-batch, or each group split into micro-batches (rows kept)."""
    torch.manual_seed(0)
    net = SearchSupernet(C=8, n_cells=5, num_classes=5, norm="group").train()
    requests = _requests(4)
    images = torch.randn(4 * 3, 3, 16, 16)
    one = []
    for g, (masks, _, _) in enumerate(requests):
        net.set_masks(masks["normal"], masks["reduce"])
        one.append(empirical_ntk(net, images[3 * g : 3 * (g + 1)]))
    net.set_group_masks([(m["normal"], m["reduce"]) for m, _, _ in requests])
    grouped = grouped_empirical_ntk(net, images, 4, chunk_size=chunk_size)
    for a, b in zip(one, grouped, strict=True):
        assert np.abs(a.theta - b.theta).max() <= TOLERANCE * np.abs(a.theta).max()


@pytest.fixture(scope="module")
def train(random_store: Path):
    return open_split(random_store, "train")


@pytest.mark.parametrize(("condition", "kernel", "sizes"), [
    ("ntk", "maml", dict(channels=4, resolution=8, ntk_images=2)),
    ("metantk", "maml", dict(channels=8, resolution=16)),
    ("metantk", "anil", dict(channels=8, resolution=16)),
])
def test_batched_condition_numbers_equal_one_at_a_time(train, condition: str, kernel: str, sizes: dict) -> None:
    cfg = SearchConfig.from_dict({"method": "te-nas" if condition == "ntk" else "metantk-nas", "kernel": kernel,
                                  "cells": 5, "tasks": 1, "ways": 2, "device": "cpu", "batch_candidates": 4,
                                  **sizes})
    measurer = Measurer(cfg, condition, train, torch.device("cpu"))
    measurer.init_supernet(1)
    requests = _requests(6, seed=1)
    one = [measurer.condition_number(*request) for request in requests]
    assert measurer.batch_groups() == 4
    batched = measurer.condition_numbers(requests)  # passes of 3 + 3 (balanced)
    assert measurer.kernel_evaluations == 12
    assert _relative(one, batched) <= TOLERANCE


def test_automatic_k_fills_a_cpu_pass(train) -> None:
    """0 = automatic: one CPU micro-batch of groups (the pixel budget), at most 64; other backends 1."""
    base = {"method": "te-nas", "cells": 5, "channels": 4, "device": "cpu"}
    tiny = Measurer(SearchConfig.from_dict({**base, "resolution": 8, "ntk_images": 2}), "ntk", train, torch.device("cpu"))
    assert tiny.batch_groups() == 64
    meta = Measurer(SearchConfig.from_dict({**base, "method": "metantk-nas", "resolution": 16, "tasks": 1}),
                    "metantk", train, torch.device("cpu"))
    assert meta.batch_groups() == 5  # 10 images of 16×16 per group
    loop = Measurer(SearchConfig.from_dict({**base, "backend": "loop"}), "ntk", train, torch.device("cpu"))
    assert loop.batch_groups() == 1


#: The NTK at the CI miniature's sizes (stable to ~1e-7, see the module docstring), a 2-op search.
TINY_SEARCH = dict(method="te-nas", channels=4, cells=5, resolution=8, ntk_images=2, repeats=1, region_batches=1,
                   region_batch_size=10, ops=["sep_conv_3x3", "max_pool_3x3BN"], device="cpu")


@pytest.mark.xfail(reason="open: at these sizes the batched trace ΔC differs from one at a time by up to 2e-3 "
                   "(e.g. 0.965 vs 0.967, same genotype); kernel-level values agree above; not yet explained", strict=False)
@pytest.mark.parametrize("pairing", ["official", "paired"])
def test_search_is_the_same_batched_and_one_at_a_time(random_store: Path, tmp_path: Path, pairing: str) -> None:
    outputs = {}
    for batch in (1, 8):
        cfg = SearchConfig.from_dict({**TINY_SEARCH, "pairing": pairing, "batch_candidates": batch})
        genotype = run_search(cfg, random_store, tmp_path / str(batch), progress=False)
        rows = read_trace(tmp_path / str(batch) / "trace.csv")
        outputs[batch] = (genotype, [(r["delta_c"], r["delta_c_mean"], r["removed"]) for r in rows],
                          [(float(r["cond_origin"]), float(r["cond_candidate"])) for r in rows])
    (g1, d1, c1), (g8, d8, c8) = outputs[1], outputs[8]
    assert g1 == g8 and d1 == d8
    assert _relative([c for pair in c1 for c in pair], [c for pair in c8 for c in pair]) <= TOLERANCE

"""Ranking of pruning candidates against hand-made tables with known answers (reference §4.2–§4.4)."""

from __future__ import annotations

import pytest

from metantk_nas.search.ranking import (
    dense_ranks,
    rank_candidates,
    round_to,
    select_edge_removals,
    select_op_removals,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (0.0, 0.0),
        (0.12345, 0.123),
        (-0.0456789, -0.0457),
        (1234.5, 1230.0),
        (0.1, 0.1),
        (-7.0, -7.0),
        # The +1e-8 guard is part of the key: it breaks the binary half-way case upwards
        # (0.1235 is stored as 0.12349999...) and dominates tiny magnitudes.
        (0.1235, 0.124),
        (-0.1235, -0.124),
        (1.234e-9, 1.12e-8),
    ],
)
def test_round_to_three_significant_figures(value: float, expected: float) -> None:
    assert round_to(value) == pytest.approx(expected, rel=1e-12, abs=0)
    if value == 0:
        assert round_to(value) == 0


def test_round_to_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        round_to(float("nan"))


def test_dense_ranks_share_rank_only_on_equal_raw_means() -> None:
    # a and b share the rounded key 0.123 but differ in the raw mean -> different ranks,
    # and the stable sort keeps a (enumerated first) before the larger b.
    ranked = dense_ranks([("a", 0.12341), ("b", 0.12349), ("c", 0.1), ("d", 0.5), ("e", 0.5)], descending=True)
    assert ranked == [("d", 0), ("e", 0), ("a", 1), ("b", 2), ("c", 3)]


def test_dense_ranks_float_mean_of_repeats_is_not_equal_to_its_rounded_value() -> None:
    mean = (0.1 + 0.2 + 0.3) / 3  # 0.20000000000000004
    ranked = dense_ranks([("x", 0.2), ("y", mean), ("z", 0.2)], descending=False)
    # Same sort key for all three (stable order x, y, z); y's raw mean differs from x's, z's from y's.
    assert ranked == [("x", 0), ("y", 1), ("z", 2)]


def test_rank_candidates_known_table() -> None:
    delta_c = [("k1", 0.2), ("k2", 0.5), ("k3", 0.2), ("k4", -0.1)]
    delta_r = [("k1", 0.0), ("k2", 0.0), ("k3", 0.01), ("k4", 0.0)]
    ranking = rank_candidates([delta_c, delta_r], [True, False])
    # ΔC desc: k2 r0, k1 r1, k3 r1, k4 r2;  ΔR asc: k1 0, k2 0, k4 0, k3 1.
    # Sums: k2 0, k1 1, k3 2, k4 2 -> tie k3/k4 keeps the ΔC-sorted order.
    assert [(r.key, r.ranks, r.score) for r in ranking] == [
        ("k2", (0, 0), 0),
        ("k1", (1, 0), 1),
        ("k3", (1, 1), 2),
        ("k4", (2, 0), 2),
    ]
    edge = {"k1": "A", "k2": "A", "k3": "B", "k4": "B"}
    assert select_op_removals(ranking, edge.__getitem__) == ["k2", "k3"]


def test_linear_regions_only_is_driven_by_delta_r_then_enumeration_order() -> None:
    # ΔC ≡ 0: every candidate shares rank_C = 0, the ΔC-sorted order is the enumeration order.
    delta_c = [(k, 0.0) for k in ("a", "b", "c", "d")]
    delta_r = [("a", 0.3), ("b", -0.2), ("c", 0.3), ("d", 0.0)]
    ranking = rank_candidates([delta_c, delta_r], [True, False])
    assert [r.key for r in ranking] == ["b", "d", "a", "c"]
    assert [r.score for r in ranking] == [0, 1, 2, 2]
    # the linear-regions method ranks ΔR alone: the same order (equal ranks are equal raw means, kept in
    # enumeration order by both)
    alone = rank_candidates([delta_r], [False])
    assert [(r.key, r.ranks) for r in alone] == [("b", (0,)), ("d", (1,)), ("a", (2,)), ("c", (2,))]


def test_three_scores_sum_their_ranks_and_ties_keep_the_first_scores_order() -> None:
    first = [("a", 0.1), ("b", 0.2), ("c", 0.3)]  # descending: c 0, b 1, a 2
    second = [("a", 1.0), ("b", 3.0), ("c", 2.0)]  # ascending: a 0, c 1, b 2
    third = [("a", 5.0), ("b", 5.0), ("c", 9.0)]  # descending: c 0, a 1, b 1
    ranking = rank_candidates([first, second, third], [True, False, True])
    assert [(r.key, r.ranks, r.score) for r in ranking] == [("c", (0, 1, 0), 1), ("a", (2, 0, 1), 3),
                                                             ("b", (1, 2, 1), 4)]
    flipped = rank_candidates([first, second, third], [False, False, True])  # a 0, b 1, c 2 first
    assert [r.key for r in flipped] == ["a", "c", "b"]  # a 1, c 3, b 4


def test_edge_group_keeps_the_last_two() -> None:
    delta_c = [("e5", 0.1), ("e6", 0.3), ("e7", -0.2), ("e8", 0.0)]
    delta_r = [("e5", 0.05), ("e6", 0.0), ("e7", 0.2), ("e8", 0.05)]
    ranking = rank_candidates([delta_c, delta_r], [True, False])
    # ΔC desc: e6 0, e5 1, e8 2, e7 3;  ΔR asc: e6 0, e5 1, e8 1, e7 2 -> sums e6 0, e5 2, e8 3, e7 5.
    assert [r.key for r in ranking] == ["e6", "e5", "e8", "e7"]
    assert select_edge_removals(ranking, keep=2) == ["e6", "e5"]
    assert select_edge_removals(ranking[:2], keep=2) == []


def test_rank_candidates_rejects_mismatched_tables() -> None:
    with pytest.raises(ValueError, match="same candidates"):
        rank_candidates([[("a", 0.0)], [("b", 0.0)]], [True, False])
    with pytest.raises(ValueError, match="one direction per score"):
        rank_candidates([[("a", 0.0)]], [True, False])
    with pytest.raises(ValueError, match="unique"):
        rank_candidates([[("a", 0.0), ("a", 1.0)], [("a", 0.0), ("a", 1.0)]], [True, False])

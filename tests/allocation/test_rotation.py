"""Capital rotation on hand-built cases: shift, caps and water-filling, top_k, ineligible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momentumbot.allocation.rotation import allocate, stable_order

INF = 1e18


def alloc(scores, eligible=None, caps=None, investable=1000.0, top_k=0, eps=1e-5):
    scores = np.asarray(scores, dtype=float)
    n = scores.shape[0]
    eligible = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    caps = np.full(n, INF) if caps is None else np.asarray(caps, dtype=float)
    return allocate(scores, eligible, caps, investable, top_k, eps)


def test_proportional_split() -> None:
    w, b = alloc([1.0, 3.0])
    assert b.tolist() == pytest.approx([250.0, 750.0])
    assert w.tolist() == [1.0, 3.0]


def test_non_positive_scores_are_shifted_by_abs_lowest_plus_epsilon() -> None:
    w, b = alloc([-2.0, 0.0, 2.0], eps=1e-5)
    assert w.tolist() == pytest.approx([1e-5, 2.0 + 1e-5, 4.0 + 1e-5])
    assert b.sum() == pytest.approx(1000.0)
    assert b[0] == pytest.approx(1000.0 * 1e-5 / (6.0 + 3e-5))


def test_zero_lowest_is_shifted_too() -> None:
    w, _ = alloc([0.0, 1.0])
    assert w[0] == pytest.approx(1e-5)


def test_positive_scores_are_not_shifted() -> None:
    w, _ = alloc([0.5, 1.0])
    assert w.tolist() == [0.5, 1.0]


def test_capped_capital_is_shared_among_the_uncapped_by_score() -> None:
    # proportional 250/250/500; A capped at 100 -> 150 goes to B and C in 1:2 -> 300, 600
    _, b = alloc([1.0, 1.0, 2.0], caps=[100.0, INF, INF])
    assert b.tolist() == pytest.approx([100.0, 300.0, 600.0])


def test_water_filling_repeats_until_nothing_is_left() -> None:
    # 1/3 each = 333.3; A capped at 100 -> B, C get 450 each; B capped at 400 -> C gets 500
    _, b = alloc([1.0, 1.0, 1.0], caps=[100.0, 400.0, INF])
    assert b.tolist() == pytest.approx([100.0, 400.0, 500.0])


def test_when_all_are_capped_the_rest_stays_in_cash() -> None:
    _, b = alloc([1.0, 2.0], caps=[100.0, 200.0])
    assert b.tolist() == pytest.approx([100.0, 200.0])


def test_ineligible_symbols_get_nothing_and_do_not_set_the_shift() -> None:
    w, b = alloc([-50.0, 1.0, 3.0], eligible=[False, True, True])
    assert np.isnan(w[0]) and b[0] == 0.0
    assert b[1:].tolist() == pytest.approx([250.0, 750.0])


def test_top_k_keeps_the_best() -> None:
    _, b = alloc([1.0, 5.0, 3.0, 4.0], top_k=2)
    assert b.tolist() == pytest.approx([0.0, 1000 * 5 / 9, 0.0, 1000 * 4 / 9])


def test_no_eligible_symbol_allocates_nothing() -> None:
    w, b = alloc([1.0, 2.0], eligible=[False, False])
    assert b.tolist() == [0.0, 0.0] and np.isnan(w).all()


def test_nothing_investable_allocates_nothing() -> None:
    _, b = alloc([1.0, 2.0], investable=-10.0)
    assert b.tolist() == [0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]), st.floats()),
        max_size=70,
    ),
    st.booleans(),
)
def test_stable_order_is_numpys_stable_argsort(key: list[float], descending: bool) -> None:
    """The top_k ranking: the same permutation as numpy's stable argsort (ties by index,
    NaN last), descending by sorting the negated keys as the allocator did before."""
    a = np.asarray(key, dtype=float)
    expected = np.argsort(-a if descending else a, kind="stable")
    assert stable_order(a, descending).tolist() == expected.tolist()

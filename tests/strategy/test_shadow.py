"""The band's session lifecycle and the shadow books, rule by rule (the kernel applies them to
every symbol at every bar)."""

from __future__ import annotations

import numpy as np
import pytest

from momentumbot.allocation.rotation import (
    SCORER_RETURN,
    SCORER_RETURN_X_LOG_DOLLAR_VOLUME,
    SCORER_SEED,
    is_eligible,
    raw_score,
)
from momentumbot.strategy.band import band_bar, band_reset
from momentumbot.strategy.shadow import (
    shadow_close,
    shadow_open,
    shadow_order,
    shadow_reset,
    shadow_return_today,
)


def test_the_first_bar_of_a_session_starts_the_band_at_its_open() -> None:
    # a stale band from yesterday (ref 50, long) is ignored: the band starts at 100
    sig, ref, level, long = band_bar(False, 50.0, 3.0, True, 100.0, 101.5, 1.0, 0.3)
    assert (sig, ref, level, long) == (1, 100.0, 1.0, True)
    sig, ref, level, long = band_bar(True, ref, level, long, 999.0, 100.2, 1.0, 0.3)
    assert (sig, ref, long) == (-1, 100.0, False), "later bars keep the session's reference"
    has, lng = np.array([True, True]), np.array([True, False])
    band_reset(0, has, lng)
    assert list(has) == [False, True] and list(lng) == [False, False]


def test_shadow_orders_follow_the_signals() -> None:
    assert shadow_order(1, False, 40.0, 0, 0, 1000.0) == 25  # floor(1000 / 40)
    assert shadow_order(1, True, 40.0, 0, 0, 1000.0) == 0, "no entries near the close"
    assert shadow_order(1, False, 40.0, 25, 0, 1000.0) == 0, "already holds"
    assert shadow_order(-1, False, 40.0, 25, 0, 1000.0) == -25
    assert shadow_order(0, False, 40.0, 25, -25, 1000.0) == -25, "no signal: the order stays"


def test_a_shadow_round_trip_books_its_result_net_of_costs() -> None:
    shares, entry_open, entry_cost = np.zeros(1, np.int64), np.zeros(1), np.zeros(1)
    realised, pending, has = np.zeros(1), np.zeros(1, np.int64), np.ones(1, np.bool_)
    shadow_open(0, 10, 100.0, 1001.0, shares, entry_open, entry_cost)
    last = np.array([103.0])
    # open position: 10 x (103 - 100) on 1,000 notional = 3 %
    ret = shadow_return_today(has, realised, shares, entry_open, last, 0, 1000.0)
    assert ret == pytest.approx(3.0)
    shadow_close(0, 1020.0, shares, entry_cost, realised)
    assert realised[0] == pytest.approx(19.0) and shares[0] == 0
    assert shadow_return_today(has, realised, shares, entry_open, last, 0, 1000.0) == pytest.approx(
        1.9
    )
    shadow_reset(0, shares, pending, realised, entry_cost)
    assert realised[0] == 0.0


def test_scorers_and_eligibility() -> None:
    assert raw_score(SCORER_SEED, 2.0, 300.0, 10.0) == 600.0
    assert raw_score(SCORER_RETURN, 2.0, 300.0, 10.0) == 2.0
    assert raw_score(SCORER_RETURN_X_LOG_DOLLAR_VOLUME, 2.0, 300.0, 10.0) == pytest.approx(
        2.0 * np.log(1.0 + 3000.0)
    )
    assert raw_score(SCORER_RETURN_X_LOG_DOLLAR_VOLUME, 2.0, 300.0, np.nan) == 0.0
    assert is_eligible(30, 300.0, 10.0, 30, 100.0)
    assert not is_eligible(29, 300.0, 10.0, 30, 100.0)
    assert not is_eligible(30, 100.0, 10.0, 30, 100.0), "quiet volume must exceed the minimum"
    assert not is_eligible(30, 300.0, np.nan, 30, 100.0)

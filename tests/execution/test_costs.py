"""Fill prices, the volume cap and IB commissions at their minimum and maximum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from momentumbot.config.schema import ExecutionConfig
from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import (
    BUY,
    SELL,
    affordable_buy,
    cost_params,
    estimate_commission,
    fill_commission_micro,
    fill_price,
    order_commission,
    tier_rate,
    volume_cap,
)
from momentumbot.execution.matching import match_in_bar

FIXED = cost_params(ExecutionConfig())
TIERED = cost_params(ExecutionConfig(commission="tiered"))


def test_slippage_moves_against_us() -> None:
    # 0.01 USD + 1 bp of the open
    assert fill_price(100.0, BUY, FIXED) == pytest.approx(100.02)
    assert fill_price(100.0, SELL, FIXED) == pytest.approx(99.98)


def test_volume_cap() -> None:
    assert volume_cap(1234.0, FIXED) == 123
    assert volume_cap(9.0, FIXED) == 0
    assert volume_cap(0.0, FIXED) == 0
    assert volume_cap(float("nan"), FIXED) == 0


def test_fixed_minimum_per_share_and_maximum() -> None:
    assert order_commission(BUY, 100, 100 * 50.0, 0.0, FIXED) == 1.00  # 0.50 < minimum
    assert order_commission(BUY, 1000, 1000 * 50.0, 0.0, FIXED) == pytest.approx(5.00)
    # 1 % of value caps it: 10 shares of a 5 USD stock = 0.50 USD
    assert order_commission(BUY, 10, 10 * 5.0, 0.0, FIXED) == pytest.approx(0.50)
    assert order_commission(SELL, 1000, 1000 * 50.0, 0.0, FIXED) == pytest.approx(5.00)


def test_fixed_minimum_is_paid_by_the_first_partial_fill() -> None:
    # 100 shares in three fills: 1.00, then 0, then 0 (cumulative formula stays at the minimum)
    fills = [(40, 50.0), (40, 50.0), (20, 50.0)]
    shares = value = 0.0
    charged = []
    for q, p in fills:
        charged.append(fill_commission_micro(BUY, shares, value, 0.0, q, q * p, 0.0, FIXED))
        shares += q
        value += q * p
    assert charged == [1 * MICRO, 0, 0]
    # 400 shares in two fills: 1.00 then 1.00 (0.005 x 400 = 2.00 in all)
    a = fill_commission_micro(BUY, 0, 0, 0, 150, 150 * 50.0, 0, FIXED)
    b = fill_commission_micro(BUY, 150, 150 * 50.0, 0, 250, 250 * 50.0, 0, FIXED)
    assert (a, b) == (1_000_000, 1_000_000)


def test_tiered_rates_by_month_volume() -> None:
    assert tier_rate(0.0, TIERED) == 0.0035
    assert tier_rate(299_999.0, TIERED) == 0.0035
    assert tier_rate(300_000.0, TIERED) == 0.0020
    assert tier_rate(5_000_000.0, TIERED) == 0.0015
    assert tier_rate(150_000_000.0, TIERED) == 0.0005


def test_tiered_minimum_maximum_and_fees() -> None:
    # buy 10 shares at 50: 0.035 -> minimum 0.35, plus clearing 0.002
    assert order_commission(BUY, 10, 500.0, 10 * 0.0035, TIERED) == pytest.approx(0.352)
    # buy 100 shares at 1 USD: 0.35 is above 1 % of 100 USD -> capped at 1.00? no: 1 % = 1.00, 0.35 < 1.00
    assert order_commission(BUY, 100, 100.0, 0.35, TIERED) == pytest.approx(0.35 + 0.02)
    # buy 10 shares at 1 USD: min 0.35 > 1 % of 10 USD = 0.10 -> 0.10, plus clearing
    assert order_commission(BUY, 10, 10.0, 0.035, TIERED) == pytest.approx(0.10 + 0.002)
    # sell 1000 at 50: 3.50 + clearing 0.20 + SEC 0.0000278 x 50000 + TAF 0.166
    assert order_commission(SELL, 1000, 50_000.0, 3.5, TIERED) == pytest.approx(
        3.5 + 0.2 + 1.39 + 0.166
    )
    # TAF is capped at 8.30 per order
    big = order_commission(SELL, 100_000, 1e6, 350.0, TIERED)
    assert big == pytest.approx(350.0 + 20.0 + 27.8 + 8.30)


def test_estimate_is_the_schedule_on_the_whole_order() -> None:
    assert estimate_commission(BUY, 300, 20.0, 0.0, FIXED) == pytest.approx(1.5)
    assert estimate_commission(BUY, 300, 20.0, 0.0, TIERED) == pytest.approx(1.05 + 0.06)


def test_affordable_buy_includes_commission() -> None:
    # 50,000 USD at 100 USD: 500 shares would cost 50,000 + 2.50
    assert affordable_buy(1000, 100.0, 50_000 * MICRO, 0, 0, 0, 0, FIXED) == 499
    assert affordable_buy(10, 100.0, 50_000 * MICRO, 0, 0, 0, 0, FIXED) == 10
    assert affordable_buy(10, 100.0, 0, 0, 0, 0, 0, FIXED) == 0


def test_match_in_bar_caps_and_clamps() -> None:
    qty, price, value, comm, _ = match_in_bar(
        BUY, 1000, 0, 100.0, 5000.0, False, 10**12, 0.0, 0.0, 0.0, 0.0, FIXED
    )
    assert (qty, price, comm) == (500, pytest.approx(100.02), 2_500_000)
    assert value == round(500 * 100.02 * MICRO)
    qty, *_ = match_in_bar(BUY, 1000, 0, 100.0, 5000.0, True, 10**12, 0.0, 0.0, 0.0, 0.0, FIXED)
    assert qty == 1000  # exempt from the cap
    qty, *_ = match_in_bar(SELL, 1000, 300, 100.0, 0.0, True, 0, 0.0, 0.0, 0.0, 0.0, FIXED)
    assert qty == 300  # a sell never exceeds the position; exempt fills at zero volume
    qty, *_ = match_in_bar(SELL, 100, 300, 100.0, 0.0, False, 0, 0.0, 0.0, 0.0, 0.0, FIXED)
    assert qty == 0  # zero volume fills nothing


from hypothesis import settings  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(st.integers(min_value=1, max_value=5_000), min_size=1, max_size=8),
    price=st.floats(min_value=0.5, max_value=2_000.0),
    side=st.sampled_from([BUY, SELL]),
    tiered=st.booleans(),
)
def test_an_orders_commission_is_the_same_however_its_fills_are_split(
    parts: list[int], price: float, side: int, tiered: bool
) -> None:
    p = TIERED if tiered else FIXED
    rate = tier_rate(0.0, p)
    shares = value = rated = 0.0
    charged = 0
    for q in parts:
        charged += fill_commission_micro(side, shares, value, rated, q, q * price, rate * q, p)
        shares += q
        value += q * price
        rated += rate * q
    # IB's published schedules for the whole order, written out (first tier: 0.0035/share)
    if tiered:
        whole = min(max(0.35, 0.0035 * shares), 0.01 * value) + 0.0002 * shares
        if side == SELL:
            whole += 0.0000278 * value + min(0.000166 * shares, 8.30)
    else:
        whole = min(max(1.00, 0.005 * shares), 0.01 * value)
    assert abs(charged / MICRO - whole) <= 1e-6 + 1e-12 * value


@settings(max_examples=200, deadline=None)
@given(
    qty=st.integers(min_value=1, max_value=100_000),
    open_price=st.floats(min_value=1.0, max_value=1_000.0),
)
def test_a_round_trip_at_one_price_loses_exactly_its_costs(qty: int, open_price: float) -> None:
    buy = fill_price(open_price, BUY, FIXED)
    sell = fill_price(open_price, SELL, FIXED)
    c_buy = order_commission(BUY, qty, qty * buy, 0.0, FIXED)
    c_sell = order_commission(SELL, qty, qty * sell, 0.0, FIXED)
    # IB fixed: 0.005 USD a share, at least 1 USD, at most 1% of the value
    assert c_buy == pytest.approx(min(max(1.0, 0.005 * qty), 0.01 * qty * buy), rel=1e-12)
    assert c_sell == pytest.approx(min(max(1.0, 0.005 * qty), 0.01 * qty * sell), rel=1e-12)
    pnl = qty * sell - qty * buy - c_buy - c_sell
    slippage = 2 * qty * (0.01 + 1e-4 * open_price)  # 1 cent + 1 bp each way
    assert pnl == pytest.approx(-(slippage + c_buy + c_sell), rel=1e-9, abs=1e-9)


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_one_micro_dollar_rule_compiled_and_not(usd: float) -> None:
    from momentumbot.domain.units import usd_to_micro
    from momentumbot.execution.costs import to_micro

    assert to_micro(usd) == usd_to_micro(usd)
    assert usd_to_micro(0.0000005) == 1 and usd_to_micro(-0.0000005) == 0  # half up

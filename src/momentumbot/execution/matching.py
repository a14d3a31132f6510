"""Matching one working order against one bar: the single fill rule the backtest kernel and the
simulated gateway both call (STRATEGY.md section 1).

The caller decides which orders may fill in a bar (decided before it) and in which order
(sells first, then buys by order id); this function decides how much of one order fills,
at what price and for what commission.
"""

from __future__ import annotations

import math

from momentumbot.compiled import jit
from momentumbot.execution.costs import (
    BUY,
    SELL,
    CostParams,
    affordable_buy,
    fill_commission_micro,
    fill_price,
    tier_rate,
    to_micro,
    volume_cap,
)


@jit()
def match_in_bar(
    side: int,
    remaining: int,
    position: int,
    bar_open: float,
    bar_volume: float,
    exempt_from_cap: bool,
    cash_micro: int,
    month_shares: float,
    prev_shares: float,
    prev_value: float,
    prev_rated: float,
    p: CostParams,
) -> tuple[int, float, int, int, float]:
    """Fill as much of an order as this bar allows.

    Returns (quantity, price, value_micro, commission_micro, rated_shares_added).
    A sell fills at most the position; a buy at most what the cash pays for, commission
    included; either at most floor(participation x volume) unless exempt (flatten, shadow).
    """
    if remaining <= 0 or not (bar_open > 0.0) or math.isnan(bar_open):
        return 0, 0.0, 0, 0, 0.0
    qty = remaining
    if not exempt_from_cap:
        cap = volume_cap(bar_volume, p)
        if cap < qty:
            qty = cap
    price = fill_price(bar_open, side, p)
    rate = tier_rate(month_shares, p)
    if side == SELL:
        if position < qty:
            qty = position
    elif side == BUY:
        qty = affordable_buy(qty, price, cash_micro, prev_shares, prev_value, prev_rated, rate, p)
    if qty <= 0:
        return 0, price, 0, 0, 0.0
    value = qty * price
    commission = fill_commission_micro(
        side, prev_shares, prev_value, prev_rated, qty, value, rate * qty, p
    )
    return qty, price, to_micro(value), commission, rate * qty

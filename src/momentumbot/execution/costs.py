"""The fill and cost model (STRATEGY.md section 1), shared by the backtest kernel, the shadow
books and the simulated gateway: fill prices with slippage, the volume cap, IB commissions.

Every function here is compiled with numba so the backtest kernel can call it, and is plain
callable from Python (the gateway and the tests call it that way). Money leaves this module
either as float USD (prices, cumulative commissions) or as integer micro-dollars (cash
bookings), never anything in between.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from momentumbot.compiled import jit
from momentumbot.config.schema import ExecutionConfig
from momentumbot.domain.orders import Side

BUY = int(Side.BUY)  # plain ints: compiled code reads them as constants
SELL = int(Side.SELL)

SCHEDULE_FIXED = 0
SCHEDULE_TIERED = 1


class CostParams(NamedTuple):
    """Execution parameters in the flat form the compiled code takes."""

    slippage_per_share: float
    slippage_bps: float
    participation: float
    schedule: int
    fixed_per_share: float
    fixed_minimum: float
    fixed_max_fraction: float
    tier_thresholds: np.ndarray  # float64, month-to-date shares
    tier_rates: np.ndarray  # float64, one more than thresholds
    tiered_minimum: float
    tiered_max_fraction: float
    clearing_per_share: float
    sec_fee_rate: float
    finra_taf_per_share: float
    finra_taf_max: float


def cost_params(cfg: ExecutionConfig) -> CostParams:
    """Flatten the execution config for the compiled code."""
    return CostParams(
        slippage_per_share=float(cfg.slippage_per_share),
        slippage_bps=float(cfg.slippage_bps),
        participation=float(cfg.max_volume_participation),
        schedule=SCHEDULE_FIXED if cfg.commission == "fixed" else SCHEDULE_TIERED,
        fixed_per_share=float(cfg.fixed.per_share),
        fixed_minimum=float(cfg.fixed.minimum),
        fixed_max_fraction=float(cfg.fixed.maximum_fraction),
        tier_thresholds=np.asarray(cfg.tiered.tier_thresholds, dtype=np.float64),
        tier_rates=np.asarray(cfg.tiered.tier_rates, dtype=np.float64),
        tiered_minimum=float(cfg.tiered.minimum),
        tiered_max_fraction=float(cfg.tiered.maximum_fraction),
        clearing_per_share=float(cfg.tiered.clearing_per_share),
        sec_fee_rate=float(cfg.tiered.sec_fee_rate),
        finra_taf_per_share=float(cfg.tiered.finra_taf_per_share),
        finra_taf_max=float(cfg.tiered.finra_taf_max),
    )


@jit()
def to_micro(usd: float) -> int:
    """USD to integer micro-dollars, rounded half up."""
    return int(math.floor(usd * 1e6 + 0.5))


@jit()
def slippage_per_share(open_price: float, p: CostParams) -> float:
    """How far a fill moves against us, USD per share."""
    return p.slippage_per_share + p.slippage_bps * 1e-4 * open_price


@jit()
def fill_price(open_price: float, side: int, p: CostParams) -> float:
    """BUY pays open + slippage, SELL gets open - slippage; not rounded."""
    return open_price + side * slippage_per_share(open_price, p)


@jit()
def volume_cap(volume: float, p: CostParams) -> int:
    """Most shares one order may fill in a bar of this volume (zero volume fills nothing)."""
    if not volume > 0.0:
        return 0
    return int(math.floor(p.participation * volume + 1e-9))


@jit()
def tier_rate(month_shares: float, p: CostParams) -> float:
    """IB tiered per-share rate for the shares already traded this calendar month."""
    for i in range(p.tier_thresholds.shape[0]):
        if month_shares < p.tier_thresholds[i]:
            return p.tier_rates[i]
    return p.tier_rates[p.tier_rates.shape[0] - 1]


@jit()
def order_commission(
    side: int, shares: float, value: float, rated_shares: float, p: CostParams
) -> float:
    """Cumulative commission of one order that has filled `shares` for `value` USD.

    fixed: min(max(minimum, per_share x shares), max_fraction x value).
    tiered: min(max(minimum, sum of rate x shares per fill), max_fraction x value)
    + clearing x shares, + on sales the SEC fee on value and FINRA TAF (capped per order).
    `rated_shares` is sum(rate x shares) over the order's fills (tiered only).
    Charging each fill the difference of this function keeps an order's cumulative
    commission equal to the schedule over what it has filled (its first fill pays the minimum).
    """
    if shares <= 0:
        return 0.0
    if p.schedule == SCHEDULE_FIXED:
        return min(max(p.fixed_minimum, p.fixed_per_share * shares), p.fixed_max_fraction * value)
    c = min(max(p.tiered_minimum, rated_shares), p.tiered_max_fraction * value)
    c += p.clearing_per_share * shares
    if side == SELL:
        c += p.sec_fee_rate * value + min(p.finra_taf_per_share * shares, p.finra_taf_max)
    return c


@jit()
def estimate_commission(
    side: int, shares: float, price: float, month_shares: float, p: CostParams
) -> float:
    """The schedule applied to a whole order at one price (the cost filter's estimate)."""
    rated = tier_rate(month_shares, p) * shares
    return order_commission(side, shares, shares * price, rated, p)


@jit()
def fill_commission_micro(
    side: int,
    prev_shares: float,
    prev_value: float,
    prev_rated: float,
    add_shares: float,
    add_value: float,
    add_rated: float,
    p: CostParams,
) -> int:
    """Commission for one more fill of an order, in micro-dollars (difference of cumulatives)."""
    before = to_micro(order_commission(side, prev_shares, prev_value, prev_rated, p))
    after = to_micro(
        order_commission(
            side, prev_shares + add_shares, prev_value + add_value, prev_rated + add_rated, p
        )
    )
    return after - before


@jit()
def affordable_buy(
    want: int,
    price: float,
    cash_micro: int,
    prev_shares: float,
    prev_value: float,
    prev_rated: float,
    rate: float,
    p: CostParams,
) -> int:
    """Most whole shares (<= want) whose cost plus commission the cash pays for."""
    lo = 0
    hi = want
    max_by_price = int(math.floor(cash_micro / (price * 1e6))) if price > 0 else want
    if max_by_price < hi:
        hi = max_by_price
    while lo < hi:
        mid = (lo + hi + 1) // 2
        cost = to_micro(mid * price) + fill_commission_micro(
            BUY, prev_shares, prev_value, prev_rated, mid, mid * price, rate * mid, p
        )
        if cost <= cash_micro:
            lo = mid
        else:
            hi = mid - 1
    return lo

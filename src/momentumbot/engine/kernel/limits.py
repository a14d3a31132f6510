"""The [risk] limits inside the minute loop (risk.checks): the daily-loss halt, the cuts of
new buys by position, exposure and order-count limits, and settlement T+1's settled cash."""

from __future__ import annotations

import math

from momentumbot.compiled import jit
from momentumbot.engine.kernel.fills import _spendable_micro
from momentumbot.engine.kernel.orders import _flatten
from momentumbot.engine.kernel.state import (
    SF_LAST_CLOSE,
    SI_POSITION,
    SI_WORKING,
    State,
)
from momentumbot.engine.kernel.tables import (
    C_AFTER_FLATTEN,
    C_CASH,
    C_HALTED,
    C_MONTH_SHARES,
    C_ORDERS,
    NS_MINUTE,
    OI_FILLED,
    OI_QUANTITY,
    OI_RISK,
    OI_SIDE,
    OI_STATUS,
    OI_SYMBOL,
    S_SKIPPED,
    S_WORKING,
    KernelParams,
    MinuteOut,
    OrderTable,
)
from momentumbot.execution.costs import (
    BUY,
    CostParams,
    affordable_buy,
    estimate_commission,
    fill_price,
    to_micro,
)
from momentumbot.risk.checks import (
    RISK_DAILY_LOSS,
    RISK_SETTLED_CASH,
    cut_new_buys,
    daily_loss_breached,
)


@jit()
def _check_daily_loss(
    m: int, decided_ns: int, st: State, orders: OrderTable, out: MinuteOut, limit: float
) -> None:
    """At a bar close, before anything is decided: remember the session's first equity; when
    equity is `limit` USD or more below it, flatten and decide nothing more this session."""
    equity = st.counters[C_CASH] / 1e6
    for s in range(st.ints[SI_POSITION].shape[0]):
        if st.ints[SI_POSITION, s] != 0:
            equity += st.ints[SI_POSITION, s] * st.floats[SF_LAST_CLOSE, s]
    if math.isnan(st.day_start_equity[0]):
        st.day_start_equity[0] = equity
    if st.counters[C_HALTED] == 1:
        return
    if not daily_loss_breached(st.day_start_equity[0], equity, limit):
        return
    st.counters[C_HALTED] = 1
    out.halted[m] = 1
    first_new = st.counters[C_ORDERS]
    _flatten(st, orders, decided_ns)
    for oid in range(first_new, st.counters[C_ORDERS]):
        orders.ints[OI_RISK, oid] = RISK_DAILY_LOSS
    st.counters[C_AFTER_FLATTEN] = 1


@jit()
def _cut_new_buys(first_new: int, st: State, orders: OrderTable, kp: KernelParams) -> None:
    cut_new_buys(
        first_new, st.counters[C_ORDERS], kp.max_position_value, kp.max_gross_exposure,
        kp.max_orders_per_minute, st.ints[SI_POSITION], st.floats[SF_LAST_CLOSE], st.ints[SI_WORKING], orders.ints[OI_SYMBOL],
        orders.ints[OI_SIDE], orders.ints[OI_QUANTITY], orders.ints[OI_FILLED], orders.ints[OI_STATUS], orders.ints[OI_RISK],
    )  # fmt: skip


@jit()
def _cut_to_settled_cash(
    first_new: int, decided_ns: int, st: State, orders: OrderTable, cp: CostParams
) -> None:
    """Settlement T+1: new buys (in id order) are cut so that they, with the working buys
    decided before, cost no more than the settled cash (at the latest close, slippage and
    commission included); `risk` says RISK_SETTLED_CASH."""
    room = _spendable_micro(st.counters, decided_ns - NS_MINUTE)
    rate = cp.tier_rates[0]
    month = float(st.counters[C_MONTH_SHARES])
    for s in range(st.ints[SI_POSITION].shape[0]):
        wid = st.ints[SI_WORKING, s]
        if (
            0 <= wid < first_new
            and orders.ints[OI_SIDE, wid] == BUY
            and st.floats[SF_LAST_CLOSE, s] > 0.0
        ):
            q = orders.ints[OI_QUANTITY, wid] - orders.ints[OI_FILLED, wid]
            px = fill_price(st.floats[SF_LAST_CLOSE, s], BUY, cp)
            room -= to_micro(q * px) + to_micro(estimate_commission(BUY, q, px, month, cp))
    for oid in range(first_new, st.counters[C_ORDERS]):
        if orders.ints[OI_SIDE, oid] != BUY or orders.ints[OI_STATUS, oid] != S_WORKING:
            continue
        s = orders.ints[OI_SYMBOL, oid]
        if not (st.floats[SF_LAST_CLOSE, s] > 0.0):
            continue
        px = fill_price(st.floats[SF_LAST_CLOSE, s], BUY, cp)
        asked = orders.ints[OI_QUANTITY, oid]
        q = affordable_buy(asked, px, max(room, 0), month, 0.0, 0.0, rate, cp) if room > 0 else 0
        room -= to_micro(q * px) + to_micro(estimate_commission(BUY, q, px, month, cp))
        if q == asked:
            continue
        orders.ints[OI_RISK, oid] = RISK_SETTLED_CASH
        if q > 0:
            orders.ints[OI_QUANTITY, oid] = q
        else:
            orders.ints[OI_STATUS, oid] = S_SKIPPED
            if st.ints[SI_WORKING, s] == oid:
                st.ints[SI_WORKING, s] = -1

"""The order rules (STRATEGY.md section 5): a new order, cancelling and replacing the working
one, the commission filter, the decision for one symbol at a bar close, and the flatten."""

from __future__ import annotations

import math

from momentumbot.compiled import jit
from momentumbot.engine.kernel.state import (
    SB_BAND_LONG,
    SF_BUDGET,
    SF_LAST_CLOSE,
    SI_POSITION,
    SI_WORKING,
    State,
)
from momentumbot.engine.kernel.tables import (
    C_MONTH_SHARES,
    C_ORDERS,
    OF_RATED,
    OF_VALUE,
    OI_DECIDED_NS,
    OI_FILLED,
    OI_QUANTITY,
    OI_REASON,
    OI_REQUESTED,
    OI_RISK,
    OI_SIDE,
    OI_STATUS,
    OI_SYMBOL,
    R_ENTER,
    R_EXIT,
    R_FLATTEN,
    R_REBALANCE,
    S_CANCELLED,
    S_PARTIAL,
    S_REPLACED,
    S_SKIPPED,
    S_WORKING,
    KernelParams,
    OrderTable,
)
from momentumbot.execution.costs import BUY, SELL, CostParams, estimate_commission


@jit(inline=True)
def _end_order(orders: OrderTable, oid: int, status: int) -> None:
    """Finish a working order: cancelled/replaced, or partially_filled if it had fills."""
    if orders.ints[OI_STATUS, oid] != S_WORKING:
        return
    if orders.ints[OI_FILLED, oid] > 0:
        orders.ints[OI_STATUS, oid] = S_PARTIAL
    else:
        orders.ints[OI_STATUS, oid] = status


@jit(inline=True)
def _new_order(
    st: State,
    orders: OrderTable,
    s: int,
    side: int,
    qty: int,
    reason: int,
    decided_ns: int,
    status: int,
) -> int:
    oid = st.counters[C_ORDERS]
    orders.ints[OI_DECIDED_NS, oid] = decided_ns
    orders.ints[OI_SYMBOL, oid] = s
    orders.ints[OI_SIDE, oid] = side
    orders.ints[OI_QUANTITY, oid] = qty
    orders.ints[OI_REASON, oid] = reason
    orders.ints[OI_STATUS, oid] = status
    orders.ints[OI_FILLED, oid] = 0
    orders.floats[OF_VALUE, oid] = 0.0
    orders.floats[OF_RATED, oid] = 0.0
    orders.ints[OI_REQUESTED, oid] = qty
    orders.ints[OI_RISK, oid] = 0
    st.counters[C_ORDERS] = oid + 1
    if status == S_WORKING:
        old = st.ints[SI_WORKING, s]
        if old >= 0:
            _end_order(orders, old, S_REPLACED)
        st.ints[SI_WORKING, s] = oid
    return oid


@jit(inline=True)
def _cancel_working(st: State, orders: OrderTable, s: int) -> None:
    oid = st.ints[SI_WORKING, s]
    if oid >= 0:
        _end_order(orders, oid, S_CANCELLED)
        st.ints[SI_WORKING, s] = -1


@jit(inline=True)
def _passes_cost_filter(
    side: int, qty: int, price: float, st: State, kp: KernelParams, cp: CostParams
) -> bool:
    est = estimate_commission(side, qty, price, st.counters[C_MONTH_SHARES], cp)
    # "exceeds" in decimal terms: 0.005 x 360 at 10.00 is exactly 5 bp of 3,600 USD, which
    # binary floats put 2e-16 apart; allow a micro-dollar of slack
    return est <= kp.max_commission_bps * 1e-4 * qty * price + 1e-6


@jit(inline=True)
def _remaining_signed(st: State, orders: OrderTable, s: int) -> int:
    oid = st.ints[SI_WORKING, s]
    if oid < 0:
        return 0
    return orders.ints[OI_SIDE, oid] * (orders.ints[OI_QUANTITY, oid] - orders.ints[OI_FILLED, oid])


@jit(inline=True)
def _rebalance_may_act(
    price: float, long: bool, budget: float, effective: int, tolerance: float
) -> bool:
    """False when the rebalance rule certainly decides nothing for a symbol (most symbols
    at most allocator runs): a cheap test before the full rule, on the symbol's latest
    close, band side, budget and position plus what its working order still has to do
    (scalars: it runs for every symbol at every allocator run)."""
    if not (price > 0.0):
        return False
    target = 0
    if long and budget > 0.0:
        target = int(math.floor(budget / price))
    if target == effective:
        return False
    return not (
        target != 0 and effective != 0 and abs(target - effective) * price < tolerance * budget
    )


@jit(inline=True)
def _decide_symbol(
    s: int,
    signal: int,
    is_alloc: bool,
    no_buys: bool,
    decided_ns: int,
    st: State,
    orders: OrderTable,
    kp: KernelParams,
    cp: CostParams,
) -> None:
    """At most one new order for one symbol at one bar close (STRATEGY.md section 5)."""
    price = st.floats[SF_LAST_CLOSE, s]
    if not (price > 0.0):
        return
    pos = st.ints[SI_POSITION, s]
    target = 0
    if st.bools[SB_BAND_LONG, s] and st.floats[SF_BUDGET, s] > 0.0:
        target = int(math.floor(st.floats[SF_BUDGET, s] / price))
    wid = st.ints[SI_WORKING, s]
    if signal == 1:
        if pos == 0 and wid < 0 and not no_buys and target > 0:
            ok = _passes_cost_filter(BUY, target, price, st, kp, cp)
            _new_order(
                st, orders, s, BUY, target, R_ENTER, decided_ns, S_WORKING if ok else S_SKIPPED
            )
            return
    elif signal == -1:
        if pos > 0:
            _new_order(st, orders, s, SELL, pos, R_EXIT, decided_ns, S_WORKING)
            return
        if wid >= 0:
            _cancel_working(st, orders, s)
            return
    if not is_alloc:
        return
    effective = pos + _remaining_signed(st, orders, s)
    if target == effective:
        return
    if target == 0:
        if pos > 0:
            if (
                wid >= 0
                and orders.ints[OI_SIDE, wid] == SELL
                and orders.ints[OI_QUANTITY, wid] - orders.ints[OI_FILLED, wid] == pos
            ):
                return
            _new_order(st, orders, s, SELL, pos, R_REBALANCE, decided_ns, S_WORKING)
        elif wid >= 0:
            _cancel_working(st, orders, s)
        return
    delta = target - pos
    if effective == 0 and delta > 0:
        if no_buys:
            return
        ok = _passes_cost_filter(BUY, delta, price, st, kp, cp)
        _new_order(
            st, orders, s, BUY, delta, R_REBALANCE, decided_ns, S_WORKING if ok else S_SKIPPED
        )
        return
    if (
        effective != 0
        and abs(target - effective) * price < kp.rebalance_tolerance * st.floats[SF_BUDGET, s]
    ):
        return
    if delta == 0:
        _cancel_working(st, orders, s)
        return
    if delta > 0 and no_buys:
        return
    side = BUY if delta > 0 else SELL
    if not _passes_cost_filter(side, abs(delta), price, st, kp, cp):
        return
    _new_order(st, orders, s, side, abs(delta), R_REBALANCE, decided_ns, S_WORKING)


@jit()
def _flatten(st: State, orders: OrderTable, decided_ns: int) -> None:
    """Cancel every working order and sell every position, exempt from the volume cap."""
    for s in range(st.ints[SI_POSITION].shape[0]):
        wid = st.ints[SI_WORKING, s]
        pos = st.ints[SI_POSITION, s]
        if (
            wid >= 0
            and orders.ints[OI_REASON, wid] == R_FLATTEN
            and orders.ints[OI_QUANTITY, wid] - orders.ints[OI_FILLED, wid] == pos
        ):
            continue  # a flatten carried from an earlier session is still working
        _cancel_working(st, orders, s)
        if pos > 0:
            _new_order(st, orders, s, SELL, pos, R_FLATTEN, decided_ns, S_WORKING)

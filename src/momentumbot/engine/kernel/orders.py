"""The order rules (STRATEGY.md section 5): a new order, cancelling and replacing the working
one, the commission filter, the decision for one symbol at a bar close, and the flatten."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit
from momentumbot.engine.kernel.state import (
    SI_POSITION,
    SI_WORKING,
    State,
)
from momentumbot.engine.kernel.tables import (
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
def _end_order(o_ints: np.ndarray, oid: int, status: int) -> None:
    """Finish a working order: cancelled/replaced, or partially_filled if it had fills."""
    if o_ints[OI_STATUS, oid] != S_WORKING:
        return
    if o_ints[OI_FILLED, oid] > 0:
        o_ints[OI_STATUS, oid] = S_PARTIAL
    else:
        o_ints[OI_STATUS, oid] = status


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
    return _add_order(
        st.counters, st.ints, orders.ints, orders.floats, s, side, qty, reason, decided_ns, status
    )


@jit(inline=True)
def _add_order(
    counters: np.ndarray,
    s_ints: np.ndarray,
    o_ints: np.ndarray,
    o_floats: np.ndarray,
    s: int,
    side: int,
    qty: int,
    reason: int,
    decided_ns: int,
    status: int,
) -> int:
    """A new order row (working: it replaces the symbol's working order), on the packed
    arrays (State.counters, State.ints, OrderTable.ints and .floats): a tuple handed to an
    inlined helper costs reference counting on each of its arrays, every call."""
    oid = counters[C_ORDERS]
    o_ints[OI_DECIDED_NS, oid] = decided_ns
    o_ints[OI_SYMBOL, oid] = s
    o_ints[OI_SIDE, oid] = side
    o_ints[OI_QUANTITY, oid] = qty
    o_ints[OI_REASON, oid] = reason
    o_ints[OI_STATUS, oid] = status
    o_ints[OI_FILLED, oid] = 0
    o_floats[OF_VALUE, oid] = 0.0
    o_floats[OF_RATED, oid] = 0.0
    o_ints[OI_REQUESTED, oid] = qty
    o_ints[OI_RISK, oid] = 0
    counters[C_ORDERS] = oid + 1
    if status == S_WORKING:
        old = s_ints[SI_WORKING, s]
        if old >= 0:
            _end_order(o_ints, old, S_REPLACED)
        s_ints[SI_WORKING, s] = oid
    return oid


@jit(inline=True)
def _cancel_working(s_ints: np.ndarray, o_ints: np.ndarray, s: int) -> None:
    oid = s_ints[SI_WORKING, s]
    if oid >= 0:
        _end_order(o_ints, oid, S_CANCELLED)
        s_ints[SI_WORKING, s] = -1


@jit(inline=True)
def _passes_cost_filter(
    side: int, qty: int, price: float, month_shares: int, kp: KernelParams, cp: CostParams
) -> bool:
    est = estimate_commission(side, qty, price, month_shares, cp)
    # "exceeds" in decimal terms: 0.005 x 360 at 10.00 is exactly 5 bp of 3,600 USD, which
    # binary floats put 2e-16 apart; allow a micro-dollar of slack
    return est <= kp.max_commission_bps * 1e-4 * qty * price + 1e-6


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


# what _decide_symbol decides: nothing, a new order, or the working order cancelled
A_NONE, A_ORDER, A_CANCEL = 0, 1, 2


@jit(inline=True)
def _rebalance(
    no_buys: bool,
    price: float,
    pos: int,
    budget: float,
    target: int,
    wid: int,
    w_side: int,
    w_remaining: int,
    month_shares: int,
    kp: KernelParams,
    cp: CostParams,
) -> tuple[int, int, int, int, int]:
    """The rebalance rule of `_decide_symbol` at an allocator run (its `target` shares)."""
    effective = pos
    if wid >= 0:
        effective += w_side * w_remaining
    if target == effective:
        return A_NONE, 0, 0, 0, 0
    if target == 0:
        if pos > 0:
            if wid >= 0 and w_side == SELL and w_remaining == pos:
                return A_NONE, 0, 0, 0, 0
            return A_ORDER, SELL, pos, R_REBALANCE, S_WORKING
        if wid >= 0:
            return A_CANCEL, 0, 0, 0, 0
        return A_NONE, 0, 0, 0, 0
    delta = target - pos
    if effective == 0 and delta > 0:
        if no_buys:
            return A_NONE, 0, 0, 0, 0
        ok = _passes_cost_filter(BUY, delta, price, month_shares, kp, cp)
        return A_ORDER, BUY, delta, R_REBALANCE, S_WORKING if ok else S_SKIPPED
    if effective != 0 and abs(target - effective) * price < kp.rebalance_tolerance * budget:
        return A_NONE, 0, 0, 0, 0
    if delta == 0:
        return A_CANCEL, 0, 0, 0, 0
    if delta > 0 and no_buys:
        return A_NONE, 0, 0, 0, 0
    side = BUY if delta > 0 else SELL
    if not _passes_cost_filter(side, abs(delta), price, month_shares, kp, cp):
        return A_NONE, 0, 0, 0, 0
    return A_ORDER, side, abs(delta), R_REBALANCE, S_WORKING


@jit(inline=True)
def _decide_symbol(
    signal: int,
    is_alloc: bool,
    no_buys: bool,
    price: float,
    pos: int,
    long: bool,
    budget: float,
    wid: int,
    w_side: int,
    w_remaining: int,
    month_shares: int,
    kp: KernelParams,
    cp: CostParams,
) -> tuple[int, int, int, int, int]:
    """At most one new order for one symbol at one bar close (STRATEGY.md section 5), from
    the symbol's latest close, position, band side, budget and working order (`wid`, -1 if
    none; its side and the shares it still has to do). Returns (action, side, quantity,
    reason, status): A_ORDER a new order, A_CANCEL the working one cancelled, A_NONE
    nothing (scalars in and out: the caller writes the tables)."""
    if not (price > 0.0):
        return A_NONE, 0, 0, 0, 0
    target = 0
    if long and budget > 0.0:
        target = int(math.floor(budget / price))
    if signal == 1:
        if pos == 0 and wid < 0 and not no_buys and target > 0:
            ok = _passes_cost_filter(BUY, target, price, month_shares, kp, cp)
            return A_ORDER, BUY, target, R_ENTER, S_WORKING if ok else S_SKIPPED
    elif signal == -1:
        if pos > 0:
            return A_ORDER, SELL, pos, R_EXIT, S_WORKING
        if wid >= 0:
            return A_CANCEL, 0, 0, 0, 0
    if not is_alloc:
        return A_NONE, 0, 0, 0, 0
    return _rebalance(
        no_buys, price, pos, budget, target, wid, w_side, w_remaining, month_shares, kp, cp
    )


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
        _cancel_working(st.ints, orders.ints, s)
        if pos > 0:
            _new_order(st, orders, s, SELL, pos, R_FLATTEN, decided_ns, S_WORKING)

"""Fills: the working orders at a bar's open (simulated), the one booking rule of every mode
(`book_fill`; `apply_fill` for the broker's fills), the shadow books' fills, the benchmark's
buy and what settlement T+1 leaves spendable."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.allocation.rotation import stable_order
from momentumbot.compiled import jit
from momentumbot.engine.kernel.state import (
    SB_BENCH_BOUGHT,
    SF_BENCH_PRICE,
    SF_SHADOW_ENTRY_COST,
    SF_SHADOW_ENTRY_OPEN,
    SF_SHADOW_REALISED,
    SI_BENCH_COMMISSION,
    SI_BENCH_SHARES,
    SI_BENCH_TIME,
    SI_POSITION,
    SI_SHADOW_PENDING,
    SI_SHADOW_SHARES,
    SI_WORKING,
    State,
)
from momentumbot.engine.kernel.tables import (
    C_BENCH_CASH,
    C_CASH,
    C_FILLS,
    C_MONTH_SHARES,
    C_PENDING,
    C_SETTLE_FROM,
    C_SETTLE_T1,
    FF_PRICE,
    FF_SLIPPAGE,
    FI_COMMISSION,
    FI_ORDER_ID,
    FI_QUANTITY,
    FI_SIDE,
    FI_SYMBOL,
    FI_TIME_NS,
    OF_RATED,
    OF_VALUE,
    OI_FILLED,
    OI_QUANTITY,
    OI_REASON,
    OI_SIDE,
    OI_STATUS,
    OI_SYMBOL,
    R_FLATTEN,
    S_FILLED,
    S_WORKING,
    FillTable,
    KernelParams,
    OrderTable,
)
from momentumbot.execution.costs import (
    BUY,
    SELL,
    CostParams,
    affordable_buy,
    fill_commission_micro,
    fill_price,
    order_commission,
    slippage_per_share,
    to_micro,
)
from momentumbot.execution.matching import match_in_bar
from momentumbot.risk.checks import SETTLEMENT_GAP_NS
from momentumbot.strategy.shadow import shadow_close, shadow_open


@jit(inline=True)
def _fill_one(
    oid: int,
    s: int,
    bar_open: float,
    bar_volume: float,
    label_ns: int,
    counters: np.ndarray,
    s_ints: np.ndarray,
    o_ints: np.ndarray,
    o_floats: np.ndarray,
    f_ints: np.ndarray,
    f_floats: np.ndarray,
    cp: CostParams,
) -> None:
    side = o_ints[OI_SIDE, oid]
    remaining = o_ints[OI_QUANTITY, oid] - o_ints[OI_FILLED, oid]
    qty, price, value_micro, comm_micro, rated = match_in_bar(
        side,
        remaining,
        s_ints[SI_POSITION, s],
        bar_open,
        bar_volume,
        o_ints[OI_REASON, oid] == R_FLATTEN,
        _spendable_micro(counters, label_ns),
        float(counters[C_MONTH_SHARES]),
        float(o_ints[OI_FILLED, oid]),
        o_floats[OF_VALUE, oid],
        o_floats[OF_RATED, oid],
        cp,
    )
    if qty <= 0:
        return
    slippage = qty * slippage_per_share(bar_open, cp)
    _book(
        oid, qty, price, value_micro, comm_micro, slippage, rated, label_ns,
        counters, s_ints, o_ints, o_floats, f_ints, f_floats,
    )  # fmt: skip


@jit(inline=True)
def book_fill(
    oid: int,
    qty: int,
    price: float,
    value_micro: int,
    commission_micro: int,
    slippage: float,
    rated: float,
    label_ns: int,
    st: State,
    orders: OrderTable,
    fills: FillTable,
) -> None:
    """Book one fill of order `oid`: the fill row, cash, position, the month's shares and the
    order's progress. The one booking rule of every mode (the kernel's simulated fills and
    the broker's fills in paper and live trading)."""
    _book(
        oid, qty, price, value_micro, commission_micro, slippage, rated, label_ns,
        st.counters, st.ints, orders.ints, orders.floats, fills.ints, fills.floats,
    )  # fmt: skip


@jit(inline=True)
def _book(
    oid: int,
    qty: int,
    price: float,
    value_micro: int,
    commission_micro: int,
    slippage: float,
    rated: float,
    label_ns: int,
    counters: np.ndarray,
    s_ints: np.ndarray,
    o_ints: np.ndarray,
    o_floats: np.ndarray,
    f_ints: np.ndarray,
    f_floats: np.ndarray,
) -> None:
    """`book_fill` on the packed arrays (State.counters and .ints, the order and fill
    tables' ints and floats): the simulated fills call it per fill without the tuples."""
    s = o_ints[OI_SYMBOL, oid]
    side = o_ints[OI_SIDE, oid]
    fid = counters[C_FILLS]
    f_ints[FI_ORDER_ID, fid] = oid
    f_ints[FI_TIME_NS, fid] = label_ns
    f_ints[FI_SYMBOL, fid] = s
    f_ints[FI_SIDE, fid] = side
    f_ints[FI_QUANTITY, fid] = qty
    f_floats[FF_PRICE, fid] = price
    f_ints[FI_COMMISSION, fid] = commission_micro
    f_floats[FF_SLIPPAGE, fid] = slippage
    counters[C_FILLS] = fid + 1
    if side == BUY:
        counters[C_CASH] -= value_micro + commission_micro
        s_ints[SI_POSITION, s] += qty
    else:
        counters[C_CASH] += value_micro - commission_micro
        s_ints[SI_POSITION, s] -= qty
        if counters[C_SETTLE_T1] == 1:
            _settlement_day(counters, label_ns)
            counters[C_PENDING] += value_micro - commission_micro
    counters[C_MONTH_SHARES] += qty
    o_ints[OI_FILLED, oid] += qty
    o_floats[OF_VALUE, oid] += qty * price
    o_floats[OF_RATED, oid] += rated
    if o_ints[OI_FILLED, oid] >= o_ints[OI_QUANTITY, oid]:
        o_ints[OI_STATUS, oid] = S_FILLED
        if s_ints[SI_WORKING, s] == oid:
            s_ints[SI_WORKING, s] = -1


@jit()
def apply_fill(
    oid: int,
    qty: int,
    price: float,
    commission_micro: int,
    slippage: float,
    label_ns: int,
    st: State,
    orders: OrderTable,
    fills: FillTable,
) -> None:
    """Book a fill the broker reported (paper/live) exactly as a simulated one is booked
    (its tier rating is added by the caller, which knows the month's volume)."""
    value_micro = to_micro(qty * price)
    book_fill(
        oid, qty, price, value_micro, commission_micro, slippage, 0.0, label_ns, st, orders, fills
    )


_FEW = 24  # working orders sorted by insertion (most minutes have a handful)


@jit()
def _fill_working(
    m: int,
    o: np.ndarray,
    v: np.ndarray,
    label_ns: int,
    st: State,
    orders: OrderTable,
    fills: FillTable,
    cp: CostParams,
) -> None:
    """Fill the working orders of every symbol that has a bar: sells first, then buys, each
    in order-id order."""
    counters, s_ints = st.counters, st.ints
    o_ints, o_floats, f_ints, f_floats = orders.ints, orders.floats, fills.ints, fills.floats
    n_sym = s_ints.shape[1]
    ids = np.empty(n_sym, np.int64)
    n = 0
    for s in range(n_sym):
        wid = s_ints[SI_WORKING, s]
        if wid >= 0 and not math.isnan(o[m, s]):
            ids[n] = wid
            n += 1
    if n == 0:
        return
    # in order-id order (the ids are distinct, so any sort gives the same order): a few
    # ids by insertion in place, many by stable_order (numba's sorts compile slowly)
    if n <= _FEW:
        for i in range(1, n):
            x = ids[i]
            j = i - 1
            while j >= 0 and ids[j] > x:
                ids[j + 1] = ids[j]
                j -= 1
            ids[j + 1] = x
    else:
        key = np.empty(n)  # order ids are far below 2**53
        for i in range(n):
            key[i] = ids[i]
        ids[:n] = ids[:n][stable_order(key, False)]
    for pass_side in (SELL, BUY):
        for i in range(n):
            oid = ids[i]
            if o_ints[OI_SIDE, oid] != pass_side or o_ints[OI_STATUS, oid] != S_WORKING:
                continue
            s = o_ints[OI_SYMBOL, oid]
            _fill_one(
                oid, s, o[m, s], v[m, s], label_ns,
                counters, s_ints, o_ints, o_floats, f_ints, f_floats, cp,
            )  # fmt: skip


@jit(inline=True)
def _fill_shadow(
    s: int, bar_open: float, floats: np.ndarray, ints: np.ndarray, cp: CostParams
) -> None:
    """Shadow orders fill in full at the next bar's open with slippage and commission (the
    State's packed arrays, not its tuple: this runs inside the per-symbol pass)."""
    q = ints[SI_SHADOW_PENDING, s]
    if q > 0:
        price = fill_price(bar_open, BUY, cp)
        value = q * price
        comm = order_commission(BUY, q, value, q * cp.tier_rates[0], cp)
        shadow_open(
            s, q, bar_open, value + comm, ints[SI_SHADOW_SHARES], floats[SF_SHADOW_ENTRY_OPEN],
            floats[SF_SHADOW_ENTRY_COST],
        )  # fmt: skip
    elif q < 0:
        n = -q
        price = fill_price(bar_open, SELL, cp)
        value = n * price
        comm = order_commission(SELL, n, value, n * cp.tier_rates[0], cp)
        shadow_close(
            s, value - comm, ints[SI_SHADOW_SHARES], floats[SF_SHADOW_ENTRY_COST],
            floats[SF_SHADOW_REALISED],
        )  # fmt: skip
    ints[SI_SHADOW_PENDING, s] = 0


@jit(inline=True)
def _settlement_day(counters: np.ndarray, label_ns: int) -> None:
    """Settlement T+1: a bar or fill of a later session settles the pending sale proceeds
    (State.counters)."""
    start = counters[C_SETTLE_FROM]
    if start < 0 or label_ns - start >= SETTLEMENT_GAP_NS:
        counters[C_PENDING] = 0
        counters[C_SETTLE_FROM] = label_ns


@jit(inline=True)
def _spendable_micro(counters: np.ndarray, label_ns: int) -> int:
    """What buys may spend at `label_ns`: the cash, less unsettled proceeds under T+1
    (State.counters)."""
    if counters[C_SETTLE_T1] != 1:
        return counters[C_CASH]
    _settlement_day(counters, label_ns)
    return counters[C_CASH] - counters[C_PENDING]


@jit(inline=True)
def _bench_buy(
    s: int, bar_open: float, t: int, st: State, kp: KernelParams, cp: CostParams
) -> None:
    """Equal-weight buy-and-hold: spend the symbol's allotment at its first bar's open."""
    price = fill_price(bar_open, BUY, cp)
    rate = cp.tier_rates[0]
    qty = affordable_buy(1 << 40, price, kp.bench_allotment_micro, 0.0, 0.0, 0.0, rate, cp)
    st.bools[SB_BENCH_BOUGHT, s] = True
    st.ints[SI_BENCH_TIME, s] = t
    if qty <= 0:
        return
    comm = fill_commission_micro(BUY, 0.0, 0.0, 0.0, qty, qty * price, rate * qty, cp)
    st.ints[SI_BENCH_SHARES, s] = qty
    st.floats[SF_BENCH_PRICE, s] = price
    st.ints[SI_BENCH_COMMISSION, s] = comm
    st.counters[C_BENCH_CASH] -= to_micro(qty * price) + comm


@jit()
def _bench_buys(m: int, o: np.ndarray, t: int, st: State, kp: KernelParams, cp: CostParams) -> int:
    """The benchmark's buys of the symbols not yet bought that have a bar at minute m;
    returns how many were bought."""
    bought = 0
    for s in range(o.shape[1]):
        if not st.bools[SB_BENCH_BOUGHT, s] and not math.isnan(o[m, s]):
            _bench_buy(s, o[m, s], t, st, kp, cp)
            bought += 1
    return bought

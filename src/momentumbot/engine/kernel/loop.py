"""The minute loop: `run_minutes` walks the minutes of a chunk and, at each one, fills at the
open, reads the closes, steps the bands and shadow books, runs the allocator, decides the
orders, applies the [risk] limits and marks the books (STRATEGY.md sections 1-5)."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit
from momentumbot.engine.kernel.allocator import _run_allocator
from momentumbot.engine.kernel.fills import _bench_buy, _fill_shadow, _fill_working
from momentumbot.engine.kernel.limits import (
    _check_daily_loss,
    _cut_new_buys,
    _cut_to_settled_cash,
)
from momentumbot.engine.kernel.orders import _decide_symbol, _flatten, _rebalance_may_act
from momentumbot.engine.kernel.tables import (
    C_AFTER_FLATTEN,
    C_ALLOCS,
    C_BENCH_CASH,
    C_CARRIES,
    C_CASH,
    C_FILLS,
    C_FIRST_ALLOC_DONE,
    C_HALTED,
    C_MONTH,
    C_MONTH_SHARES,
    C_ORDERS,
    C_SETTLE_T1,
    C_STARTED_RUN,
    F_ALLOC,
    F_FIRST,
    F_FLATTEN,
    F_LAST,
    F_NO_BUYS,
    F_WARMUP,
    NS_MINUTE,
    R_FLATTEN,
    AllocTable,
    FillTable,
    KernelParams,
    MinuteOut,
    OrderTable,
    State,
)
from momentumbot.execution.costs import CostParams
from momentumbot.strategy.band import band_bar, band_reset
from momentumbot.strategy.shadow import shadow_order, shadow_reset


@jit()
def _session_start(st: State, kp: KernelParams) -> None:
    st.counters[C_FIRST_ALLOC_DONE] = 0
    st.counters[C_AFTER_FLATTEN] = 0
    st.counters[C_HALTED] = 0
    st.day_start_equity[0] = np.nan
    if kp.hold_overnight and st.counters[C_STARTED_RUN] == 1:
        return
    for s in range(st.position.shape[0]):
        band_reset(s, st.band_has, st.band_long)
        shadow_reset(
            s, st.shadow_shares, st.shadow_pending, st.shadow_realised, st.shadow_entry_cost
        )


@jit(inline=True)
def _open_phase(
    m: int,
    o: np.ndarray,
    v: np.ndarray,
    t: int,
    fl: int,
    month: int,
    st: State,
    orders: OrderTable,
    fills: FillTable,
    kp: KernelParams,
    cp: CostParams,
) -> None:
    """1. A new session's resets, the month's share count, then the fills at this bar's open:
    working orders, shadow orders and the benchmark's first buys."""
    if (fl & F_FIRST) != 0:
        _session_start(st, kp)
        st.counters[C_STARTED_RUN] = 1
    if month != st.counters[C_MONTH]:
        st.counters[C_MONTH] = month
        st.counters[C_MONTH_SHARES] = 0
    if kp.simulate_fills:
        _fill_working(m, o, v, t, st, orders, fills, cp)
    for s in range(o.shape[1]):
        if math.isnan(o[m, s]):
            continue
        if st.shadow_pending[s] != 0:
            _fill_shadow(s, o[m, s], st, cp)
        if not st.bench_bought[s]:
            _bench_buy(s, o[m, s], t, st, kp, cp)


@jit(inline=True)
def _band_phase(
    m: int,
    o: np.ndarray,
    c: np.ndarray,
    after_flatten: bool,
    no_buys: bool,
    signals: np.ndarray,
    st: State,
    kp: KernelParams,
) -> None:
    """3. Every symbol's band at this bar's close, its signal (into `signals`, 0 for a symbol
    without a bar) and its shadow order."""
    for s in range(c.shape[1]):
        signals[s] = 0
        if math.isnan(c[m, s]):
            continue
        sig, ref, level, long = band_bar(
            st.band_has[s], st.band_ref[s], st.band_level[s], st.band_long[s], o[m, s],
            c[m, s], kp.step, kp.buffer,
        )  # fmt: skip
        st.band_has[s] = True
        st.band_ref[s] = ref
        st.band_level[s] = level
        st.band_long[s] = long
        signals[s] = sig
        if sig != 0 and not after_flatten:
            st.shadow_pending[s] = shadow_order(
                sig, no_buys, c[m, s], st.shadow_shares[s], st.shadow_pending[s],
                kp.shadow_notional,
            )  # fmt: skip


@jit(inline=True)
def _decide_phase(
    fl: int,
    r: int,
    decided: int,
    no_buys: bool,
    signals: np.ndarray,
    qv_at: np.ndarray,
    qv_n: np.ndarray,
    st: State,
    orders: OrderTable,
    allocs: AllocTable,
    kp: KernelParams,
    cp: CostParams,
) -> None:
    """4. The allocator (at its minutes, from row `r` of qv_at/qv_n), then the flatten or
    every symbol's order decision."""
    n_sym = signals.shape[0]
    is_alloc = (fl & F_ALLOC) != 0
    if is_alloc:
        _run_allocator(decided, st, allocs, kp, qv_at[r], qv_n[r])
    if (fl & F_FLATTEN) != 0 and not kp.hold_overnight:
        _flatten(st, orders, decided)
        for s in range(n_sym):
            st.shadow_pending[s] = -st.shadow_shares[s]
        st.counters[C_AFTER_FLATTEN] = 1
        return
    band_long = st.band_long
    budget = st.budget
    last_close = st.last_close
    position = st.position
    working = st.working
    o_side = orders.side
    o_quantity = orders.quantity
    o_filled = orders.filled
    for s in range(n_sym):
        if signals[s] == 0:
            if not is_alloc:
                continue
            if not _rebalance_may_act(
                s, band_long, budget, last_close, position, working, o_side, o_quantity,
                o_filled, kp.rebalance_tolerance,
            ):  # fmt: skip
                continue
        _decide_symbol(s, signals[s], is_alloc, no_buys, decided, st, orders, kp, cp)


@jit(inline=True)
def _mark(m: int, fl: int, st: State, orders: OrderTable, out: MinuteOut, kp: KernelParams) -> None:
    """5. The books' marks at this bar's close; at a session's last bar, the flattens still
    working (carried overnight)."""
    n_sym = st.position.shape[0]
    pv = 0.0
    bench = st.counters[C_BENCH_CASH] / 1e6
    for s in range(n_sym):
        if st.position[s] != 0:
            pv += st.position[s] * st.last_close[s]
        if st.bench_shares[s] != 0:
            bench += st.bench_shares[s] * st.last_close[s]
    out.cash[m] = st.counters[C_CASH]
    out.positions_value[m] = pv
    out.bench_equity[m] = bench
    if (fl & F_LAST) != 0 and not kp.hold_overnight:
        for s in range(n_sym):
            wid = st.working[s]
            if wid >= 0 and orders.reason[wid] == R_FLATTEN:
                st.counters[C_CARRIES] += 1


@jit(nogil=True)
def run_minutes(
    o: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    label_ns: np.ndarray,
    flags: np.ndarray,
    month_id: np.ndarray,
    alloc_row: np.ndarray,
    qv_at: np.ndarray,
    qv_n: np.ndarray,
    m_start: int,
    m_stop: int,
    kp: KernelParams,
    cp: CostParams,
    st: State,
    orders: OrderTable,
    fills: FillTable,
    allocs: AllocTable,
    out: MinuteOut,
) -> int:
    """Advance the engine over minutes [m_start, m_stop) of a chunk.

    o, c, v are (minutes x symbols) opens, closes and volumes with NaN where a symbol has
    no bar; qv_at/qv_n hold quiet_volume and its window size at each allocator minute
    (row alloc_row[m]), from allocation.quiet_volume.quiet_volume_pass_columns. Returns the
    index of the first minute not processed: m_stop, or earlier when a table has too little
    room left for one more minute (grow it and call again).

    The [risk] limits and settlement T+1 apply when `kp` sets them.
    """
    n_sym = o.shape[1]
    cut_limits = (
        kp.max_position_value > 0.0 or kp.max_gross_exposure > 0.0 or kp.max_orders_per_minute > 0
    )
    st.counters[C_SETTLE_T1] = 1 if kp.settle_t1 else 0
    signals = np.zeros(n_sym, np.int64)
    for m in range(m_start, m_stop):
        if (
            orders.symbol.shape[0] - st.counters[C_ORDERS] < n_sym + 1
            or fills.symbol.shape[0] - st.counters[C_FILLS] < n_sym + 1
            or allocs.symbol.shape[0] - st.counters[C_ALLOCS] < n_sym + 1
        ):
            return m
        fl = flags[m]
        warm = (fl & F_WARMUP) != 0
        t = label_ns[m]
        decided = t + NS_MINUTE
        if not warm:
            _open_phase(m, o, v, t, fl, month_id[m], st, orders, fills, kp, cp)
        # 2. closes
        for s in range(n_sym):
            if not math.isnan(c[m, s]):
                st.last_close[s] = c[m, s]
        if warm:
            continue
        if kp.max_daily_loss > 0.0:
            _check_daily_loss(m, decided, st, orders, out, kp.max_daily_loss)
        after_flatten = st.counters[C_AFTER_FLATTEN] == 1
        no_buys = (fl & F_NO_BUYS) != 0
        # 3. bands, signals and shadow orders
        _band_phase(m, o, c, after_flatten, no_buys, signals, st, kp)
        # 4. allocator, then orders, then the risk limits on the new ones
        first_new = st.counters[C_ORDERS]
        if not after_flatten:
            _decide_phase(
                fl, alloc_row[m], decided, no_buys, signals, qv_at, qv_n, st, orders, allocs,
                kp, cp,
            )  # fmt: skip
        if cut_limits and st.counters[C_ORDERS] > first_new:
            _cut_new_buys(first_new, st, orders, kp)
        if kp.settle_t1 and st.counters[C_ORDERS] > first_new:
            _cut_to_settled_cash(first_new, decided, st, orders, cp)
        # 5. marks
        _mark(m, fl, st, orders, out, kp)
    return m_stop

"""The minute loop: `run_minutes` walks the minutes of a chunk and, at each one, fills at the
open, reads the closes, steps the bands and shadow books, runs the allocator, decides the
orders, applies the [risk] limits and marks the books (STRATEGY.md sections 1-5)."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit
from momentumbot.engine.kernel.allocator import _run_allocator
from momentumbot.engine.kernel.fills import _bench_buys, _fill_shadow, _fill_working
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


@jit()
def _flatten_session(st: State, orders: OrderTable, decided_ns: int) -> None:
    """The session's flatten at its decision minute: every working order cancelled, every
    position sold, every shadow book closed at the next bar; nothing more is decided."""
    _flatten(st, orders, decided_ns)
    for s in range(st.shadow_pending.shape[0]):
        st.shadow_pending[s] = -st.shadow_shares[s]
    st.counters[C_AFTER_FLATTEN] = 1


@jit(inline=True)
def _needs_fills(m: int, o: np.ndarray, working: np.ndarray) -> bool:
    """Whether a symbol with a bar at minute m has a working order (most minutes at a few
    symbols have none: the fill pass and its call are skipped)."""
    for s in range(working.shape[0]):
        if working[s] >= 0 and not math.isnan(o[m, s]):
            return True
    return False


@jit(inline=True)
def _carries(working: np.ndarray, reason: np.ndarray) -> int:
    """Flattens still working at a session's last bar (carried overnight)."""
    n = 0
    for s in range(working.shape[0]):
        wid = working[s]
        if wid >= 0 and reason[wid] == R_FLATTEN:
            n += 1
    return n


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
    counters = st.counters
    counters[C_SETTLE_T1] = 1 if kp.settle_t1 else 0
    # the arrays the per-minute passes read, taken out of the tuples once: a tuple handed to
    # an inlined helper costs an atomic reference count on each of its arrays, every call
    last_close, position, working = st.last_close, st.position, st.working
    band_has, band_ref, band_level, band_long = st.band_has, st.band_ref, st.band_level, st.band_long
    shadow_pending, shadow_shares = st.shadow_pending, st.shadow_shares
    shadow_entry_open, shadow_entry_cost = st.shadow_entry_open, st.shadow_entry_cost
    shadow_realised = st.shadow_realised
    bench_bought, bench_shares = st.bench_bought, st.bench_shares
    o_side, o_quantity, o_filled, o_reason = orders.side, orders.quantity, orders.filled, orders.reason
    out_cash, out_pv, out_bench = out.cash, out.positions_value, out.bench_equity
    room_orders = orders.symbol.shape[0] - n_sym - 1
    room_fills = fills.symbol.shape[0] - n_sym - 1
    room_allocs = allocs.symbol.shape[0] - n_sym - 1
    unbought = 0
    for s in range(n_sym):
        if not bench_bought[s]:
            unbought += 1
    signals = np.zeros(n_sym, np.int64)
    signalled = np.zeros(n_sym, np.int64)  # the symbols with a signal this minute, in order
    for m in range(m_start, m_stop):
        if (
            counters[C_ORDERS] > room_orders
            or counters[C_FILLS] > room_fills
            or counters[C_ALLOCS] > room_allocs
        ):
            return m
        fl = flags[m]
        if (fl & F_WARMUP) != 0:
            for s in range(n_sym):
                if not math.isnan(c[m, s]):
                    last_close[s] = c[m, s]
            continue
        t = label_ns[m]
        decided = t + NS_MINUTE
        # 1. a new session's resets, the month's share count, the fills at this bar's open
        if (fl & F_FIRST) != 0:
            _session_start(st, kp)
            counters[C_STARTED_RUN] = 1
        if month_id[m] != counters[C_MONTH]:
            counters[C_MONTH] = month_id[m]
            counters[C_MONTH_SHARES] = 0
        if kp.simulate_fills and _needs_fills(m, o, working):
            _fill_working(m, o, v, t, st, orders, fills, cp)
        if unbought > 0:
            unbought -= _bench_buys(m, o, t, st, kp, cp)
        # shadow fills at the open; 2. the closes; 3. the bands and their signals
        n_sig = 0
        for s in range(n_sym):
            bar_open = o[m, s]
            if shadow_pending[s] != 0 and not math.isnan(bar_open):
                _fill_shadow(
                    s, bar_open, shadow_pending, shadow_shares, shadow_entry_open, shadow_entry_cost,
                    shadow_realised, cp,
                )  # fmt: skip
            close = c[m, s]
            signals[s] = 0
            if math.isnan(close):
                continue
            last_close[s] = close
            sig, ref, level, long = band_bar(
                band_has[s], band_ref[s], band_level[s], band_long[s], bar_open, close, kp.step,
                kp.buffer,
            )  # fmt: skip
            band_has[s] = True
            band_ref[s] = ref
            band_level[s] = level
            band_long[s] = long
            if sig != 0:
                signals[s] = sig
                signalled[n_sig] = s
                n_sig += 1
        if kp.max_daily_loss > 0.0:
            _check_daily_loss(m, decided, st, orders, out, kp.max_daily_loss)
        after_flatten = counters[C_AFTER_FLATTEN] == 1
        no_buys = (fl & F_NO_BUYS) != 0
        # the shadow orders of the signals (none after the session's flatten)
        if not after_flatten:
            for i in range(n_sig):
                s = signalled[i]
                shadow_pending[s] = shadow_order(
                    signals[s], no_buys, c[m, s], shadow_shares[s], shadow_pending[s],
                    kp.shadow_notional,
                )  # fmt: skip
        # 4. the allocator (at its minutes), then the flatten or the orders, then the risk
        # limits on the new ones
        first_new = counters[C_ORDERS]
        if not after_flatten:
            is_alloc = (fl & F_ALLOC) != 0
            if is_alloc:
                r = alloc_row[m]
                _run_allocator(decided, st, allocs, kp, qv_at[r], qv_n[r])
            if (fl & F_FLATTEN) != 0 and not kp.hold_overnight:
                _flatten_session(st, orders, decided)
            elif is_alloc:
                budget = st.budget
                for s in range(n_sym):
                    if signals[s] == 0 and not _rebalance_may_act(
                        s, band_long, budget, last_close, position, working, o_side, o_quantity,
                        o_filled, kp.rebalance_tolerance,
                    ):  # fmt: skip
                        continue
                    _decide_symbol(s, signals[s], True, no_buys, decided, st, orders, kp, cp)
            else:
                for i in range(n_sig):
                    s = signalled[i]
                    _decide_symbol(s, signals[s], False, no_buys, decided, st, orders, kp, cp)
        if cut_limits and counters[C_ORDERS] > first_new:
            _cut_new_buys(first_new, st, orders, kp)
        if kp.settle_t1 and counters[C_ORDERS] > first_new:
            _cut_to_settled_cash(first_new, decided, st, orders, cp)
        # 5. the books' marks at this bar's close
        pv = 0.0
        bench = counters[C_BENCH_CASH] / 1e6
        for s in range(n_sym):
            if position[s] != 0:
                pv += position[s] * last_close[s]
            if bench_shares[s] != 0:
                bench += bench_shares[s] * last_close[s]
        out_cash[m] = counters[C_CASH]
        out_pv[m] = pv
        out_bench[m] = bench
        if (fl & F_LAST) != 0 and not kp.hold_overnight:
            counters[C_CARRIES] += _carries(working, o_reason)
    return m_stop

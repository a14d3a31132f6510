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
from momentumbot.engine.kernel.orders import (
    A_CANCEL,
    A_ORDER,
    _add_order,
    _decide_symbol,
    _end_order,
    _flatten,
    _rebalance_may_act,
)
from momentumbot.engine.kernel.state import (
    SB_BAND_HAS,
    SB_BAND_LONG,
    SB_BENCH_BOUGHT,
    SF_BAND_LEVEL,
    SF_BAND_REF,
    SF_BUDGET,
    SF_LAST_CLOSE,
    SF_SHADOW_ENTRY_COST,
    SF_SHADOW_REALISED,
    SI_BAND_RUNGS,
    SI_BENCH_SHARES,
    SI_POSITION,
    SI_SHADOW_PENDING,
    SI_SHADOW_SHARES,
    SI_WORKING,
    State,
)
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
    OI_FILLED,
    OI_QUANTITY,
    OI_REASON,
    OI_SIDE,
    R_FLATTEN,
    S_CANCELLED,
    AllocTable,
    FillTable,
    KernelParams,
    MinuteOut,
    OrderTable,
)
from momentumbot.execution.costs import CostParams
from momentumbot.strategy.band import band_bar_rungs, band_reset
from momentumbot.strategy.shadow import shadow_order, shadow_reset


@jit()
def _session_start(st: State, kp: KernelParams) -> None:
    st.counters[C_FIRST_ALLOC_DONE] = 0
    st.counters[C_AFTER_FLATTEN] = 0
    st.counters[C_HALTED] = 0
    st.day_start_equity[0] = np.nan
    if kp.hold_overnight and st.counters[C_STARTED_RUN] == 1:
        return
    has, long = st.bools[SB_BAND_HAS], st.bools[SB_BAND_LONG]
    shares, pending = st.ints[SI_SHADOW_SHARES], st.ints[SI_SHADOW_PENDING]
    realised, entry_cost = (
        st.floats[SF_SHADOW_REALISED],
        st.floats[SF_SHADOW_ENTRY_COST],
    )
    for s in range(has.shape[0]):
        band_reset(s, has, long)
        shadow_reset(s, shares, pending, realised, entry_cost)


@jit()
def _flatten_session(st: State, orders: OrderTable, decided_ns: int) -> None:
    """The session's flatten at its decision minute: every working order cancelled, every
    position sold, every shadow book closed at the next bar; nothing more is decided."""
    _flatten(st, orders, decided_ns)
    for s in range(st.ints.shape[1]):
        st.ints[SI_SHADOW_PENDING, s] = -st.ints[SI_SHADOW_SHARES, s]
    st.counters[C_AFTER_FLATTEN] = 1


@jit(inline=True)
def _needs_fills(m: int, o: np.ndarray, ints: np.ndarray) -> bool:
    """Whether a symbol with a bar at minute m has a working order (when none has, the
    fill pass and its call are skipped)."""
    for s in range(o.shape[1]):  # noqa: SIM110 (a plain loop for numba)
        if ints[SI_WORKING, s] >= 0 and not math.isnan(o[m, s]):
            return True
    return False


@jit(inline=True)
def _bar_pass(
    m: int,
    o: np.ndarray,
    c: np.ndarray,
    floats: np.ndarray,
    ints: np.ndarray,
    bools: np.ndarray,
    signals: np.ndarray,
    signalled: np.ndarray,
    kp: KernelParams,
    cp: CostParams,
) -> int:
    """One pass over the symbols: the shadow fills at this bar's open, the closes, and each
    band at this close (STRATEGY.md sections 2-3). Writes each symbol's signal into
    `signals` (0 without a bar) and the symbols with one, in order, into `signalled`;
    returns how many. State is read through its packed arrays (no tuple per symbol)."""
    n_sig = 0
    for s in range(o.shape[1]):
        bar_open = o[m, s]
        if ints[SI_SHADOW_PENDING, s] != 0 and not math.isnan(bar_open):
            _fill_shadow(s, bar_open, floats, ints, cp)
        close = c[m, s]
        signals[s] = 0
        if math.isnan(close):
            continue
        floats[SF_LAST_CLOSE, s] = close
        sig, ref, rungs, long = band_bar_rungs(
            bools[SB_BAND_HAS, s], floats[SF_BAND_REF, s], ints[SI_BAND_RUNGS, s],
            bools[SB_BAND_LONG, s], bar_open, close, kp.step, kp.buffer,
        )  # fmt: skip
        bools[SB_BAND_HAS, s] = True
        floats[SF_BAND_REF, s] = ref
        ints[SI_BAND_RUNGS, s] = rungs
        floats[SF_BAND_LEVEL, s] = rungs * kp.step
        bools[SB_BAND_LONG, s] = long
        if sig != 0:
            signals[s] = sig
            signalled[n_sig] = s
            n_sig += 1
    return n_sig


@jit(inline=True)
def _shadow_orders(
    closes: np.ndarray,
    n_sig: int,
    signalled: np.ndarray,
    signals: np.ndarray,
    no_buys: bool,
    ints: np.ndarray,
    shadow_notional: float,
) -> None:
    """The shadow books' orders after this minute's signals (none after the flatten)."""
    for i in range(n_sig):
        s = signalled[i]
        ints[SI_SHADOW_PENDING, s] = shadow_order(
            signals[s], no_buys, closes[s], ints[SI_SHADOW_SHARES, s], ints[SI_SHADOW_PENDING, s],
            shadow_notional,
        )  # fmt: skip


@jit()
def _decide_phase(
    fl: int,
    decided: int,
    no_buys: bool,
    n_sig: int,
    signals: np.ndarray,
    signalled: np.ndarray,
    st: State,
    orders: OrderTable,
    kp: KernelParams,
    cp: CostParams,
) -> None:
    """4. After the allocator: the flatten, or the order decisions: every symbol at an
    allocator minute (those the rebalance rule certainly leaves alone skipped by a cheap
    test), else the symbols with a signal. Compiled apart; called when there is work. The
    decisions take scalars and the orders are written here, on the packed arrays."""
    if (fl & F_FLATTEN) != 0 and not kp.hold_overnight:
        _flatten_session(st, orders, decided)
        return
    is_alloc = (fl & F_ALLOC) != 0
    counters, floats, ints, bools = st.counters, st.floats, st.ints, st.bools
    o_ints, o_floats = orders.ints, orders.floats
    for i in range(signals.shape[0] if is_alloc else n_sig):
        s = i if is_alloc else signalled[i]
        wid = ints[SI_WORKING, s]
        w_side, w_remaining = 0, 0
        if wid >= 0:
            w_side = o_ints[OI_SIDE, wid]
            w_remaining = o_ints[OI_QUANTITY, wid] - o_ints[OI_FILLED, wid]
        if is_alloc and signals[s] == 0 and not _rebalance_may_act(
            floats[SF_LAST_CLOSE, s], bools[SB_BAND_LONG, s], floats[SF_BUDGET, s],
            ints[SI_POSITION, s] + w_side * w_remaining, kp.rebalance_tolerance,
        ):  # fmt: skip
            continue
        action, side, qty, reason, status = _decide_symbol(
            signals[s], is_alloc, no_buys, floats[SF_LAST_CLOSE, s], ints[SI_POSITION, s],
            bools[SB_BAND_LONG, s], floats[SF_BUDGET, s], wid, w_side, w_remaining,
            counters[C_MONTH_SHARES], kp, cp,
        )  # fmt: skip
        if action == A_ORDER:
            _add_order(counters, ints, o_ints, o_floats, s, side, qty, reason, decided, status)
        elif action == A_CANCEL:
            _end_order(o_ints, wid, S_CANCELLED)
            ints[SI_WORKING, s] = -1


@jit(inline=True)
def _mark(
    m: int,
    fl: int,
    counters: np.ndarray,
    floats: np.ndarray,
    ints: np.ndarray,
    o_reason: np.ndarray,
    out: MinuteOut,
    hold_overnight: bool,
) -> None:
    """5. The books' marks at this bar's close (summed in symbol order, as always); at a
    session's last bar, the flattens still working (carried overnight)."""
    pv = 0.0
    bench = counters[C_BENCH_CASH] / 1e6
    for s in range(ints.shape[1]):
        pos = ints[SI_POSITION, s]
        if pos != 0:
            pv += pos * floats[SF_LAST_CLOSE, s]
        held = ints[SI_BENCH_SHARES, s]
        if held != 0:
            bench += held * floats[SF_LAST_CLOSE, s]
    out.cash[m] = counters[C_CASH]
    out.positions_value[m] = pv
    out.bench_equity[m] = bench
    if (fl & F_LAST) != 0 and not hold_overnight:
        for s in range(ints.shape[1]):
            wid = ints[SI_WORKING, s]
            if wid >= 0 and o_reason[wid] == R_FLATTEN:
                counters[C_CARRIES] += 1


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
    (row alloc_row[m]), from allocation.quiet_volume's walk. Returns the
    index of the first minute not processed: m_stop, or earlier when a table has too little
    room left for one more minute (grow it and call again).

    The [risk] limits and settlement T+1 apply when `kp` sets them. Each tuple handed to a
    helper (compiled apart or inlined) costs an atomic reference count on each of its
    arrays, so the per-symbol passes take the State's packed arrays, and the calls that
    take the tuples are made only when there is work (a fill, a signal, an allocator run).
    """
    n_sym = o.shape[1]
    cut_limits = (
        kp.max_position_value > 0.0 or kp.max_gross_exposure > 0.0 or kp.max_orders_per_minute > 0
    )
    counters, floats, ints, bools = st.counters, st.floats, st.ints, st.bools
    counters[C_SETTLE_T1] = 1 if kp.settle_t1 else 0
    room = (
        orders.ints.shape[1] - n_sym - 1,
        fills.ints.shape[1] - n_sym - 1,
        allocs.symbol.shape[0] - n_sym - 1,
    )
    unbought = n_sym - np.count_nonzero(bools[SB_BENCH_BOUGHT])
    signals = np.zeros(n_sym, np.int64)
    signalled = np.zeros(n_sym, np.int64)
    for m in range(m_start, m_stop):
        if (
            counters[C_ORDERS] > room[0]
            or counters[C_FILLS] > room[1]
            or counters[C_ALLOCS] > room[2]
        ):
            return m
        fl = flags[m]
        if (fl & F_WARMUP) != 0:
            _closes(m, c, floats)
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
        if kp.simulate_fills and _needs_fills(m, o, ints):
            _fill_working(m, o, v, t, st, orders, fills, cp)
        if unbought > 0:
            unbought -= _bench_buys(m, o, t, st, kp, cp)
        # the shadow fills at the open, 2. the closes, 3. the bands and their signals
        n_sig = _bar_pass(m, o, c, floats, ints, bools, signals, signalled, kp, cp)
        if kp.max_daily_loss > 0.0:
            _check_daily_loss(m, decided, st, orders, out, kp.max_daily_loss)
        first_new = counters[C_ORDERS]
        if counters[C_AFTER_FLATTEN] != 1:
            no_buys = (fl & F_NO_BUYS) != 0
            _shadow_orders(c[m], n_sig, signalled, signals, no_buys, ints, kp.shadow_notional)
            # 4. the allocator, then the orders, then the risk limits on the new ones
            if (fl & F_ALLOC) != 0:
                r = alloc_row[m]
                _run_allocator(decided, st, allocs, kp, qv_at[r], qv_n[r])
            if n_sig > 0 or (fl & (F_ALLOC | F_FLATTEN)) != 0:
                _decide_phase(fl, decided, no_buys, n_sig, signals, signalled, st, orders, kp, cp)
        if cut_limits and counters[C_ORDERS] > first_new:
            _cut_new_buys(first_new, st, orders, kp)
        if kp.settle_t1 and counters[C_ORDERS] > first_new:
            _cut_to_settled_cash(first_new, decided, st, orders, cp)
        # 5. marks
        _mark(
            m,
            fl,
            counters,
            floats,
            ints,
            orders.ints[OI_REASON],
            out,
            kp.hold_overnight,
        )
    return m_stop


@jit(inline=True)
def _closes(m: int, c: np.ndarray, floats: np.ndarray) -> None:
    """A warm-up minute: only the closes (quiet volume's history is gathered elsewhere)."""
    for s in range(c.shape[1]):
        if not math.isnan(c[m, s]):
            floats[SF_LAST_CLOSE, s] = c[m, s]

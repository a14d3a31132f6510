"""The compiled minute loop: band, shadow books, allocator, order rules, the [risk] limits
and fills for every symbol at once (STRATEGY.md sections 1-5). Backtest, sweeps, paper and
live all drive this code, so they all apply the same limits (risk.checks).

The rules live where their names are and are inlined here: the band and the shadow books
in `strategy`, scorers, eligibility and budgets in `allocation`, fills and costs in
`execution`, the limits in `risk.checks`; the kernel keeps the order rules, the one
fill-booking function (`book_fill`, also used for the broker's fills) and the loop.

The kernel is time-major: it walks the minutes of a chunk of sessions and, at each minute,
does a little vector work over the symbols. All state lives in arrays indexed by symbol
(`State`); orders, fills and allocations go into preallocated tables that the caller grows
when the kernel stops early for lack of room. Cash is integer micro-dollars.
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeVar

import numpy as np

from momentumbot.allocation.rotation import allocate, is_eligible, raw_score, stable_order
from momentumbot.compiled import jit
from momentumbot.domain.orders import OrderStatus, Reason
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.execution.costs import (
    BUY,
    SELL,
    CostParams,
    affordable_buy,
    estimate_commission,
    fill_commission_micro,
    fill_price,
    order_commission,
    slippage_per_share,
    to_micro,
)
from momentumbot.execution.matching import match_in_bar
from momentumbot.risk.checks import (
    RISK_DAILY_LOSS,
    RISK_SETTLED_CASH,
    SETTLEMENT_GAP_NS,
    cut_new_buys,
    daily_loss_breached,
)
from momentumbot.strategy.band import band_bar, band_reset
from momentumbot.strategy.shadow import (
    shadow_close,
    shadow_open,
    shadow_order,
    shadow_reset,
    shadow_return_today,
)

# Minute flags (bit field, one int32 per minute).
F_FIRST = 1  # first minute of a session
F_LAST = 2  # last minute of a session
F_ALLOC = 4  # the allocator runs at this bar's close
F_FLATTEN = 8  # the flatten is decided at this bar's close
F_NO_BUYS = 16  # decision time is inside the no-new-entries window
F_WARMUP = 32  # before the run's start: only quiet-volume history is gathered

# Order reasons and statuses: the tables hold domain.orders' codes as plain ints (this is the
# one place they are mapped; compiled code reads them as constants); the CSV files their names.
R_ENTER, R_EXIT, R_REBALANCE, R_FLATTEN = (
    int(Reason.ENTER), int(Reason.EXIT), int(Reason.REBALANCE), int(Reason.FLATTEN)
)  # fmt: skip
REASONS = tuple(r.label for r in sorted(Reason))
S_WORKING, S_FILLED, S_PARTIAL, S_CANCELLED, S_REPLACED, S_SKIPPED = (
    int(OrderStatus.WORKING), int(OrderStatus.FILLED), int(OrderStatus.PARTIAL),
    int(OrderStatus.CANCELLED), int(OrderStatus.REPLACED), int(OrderStatus.SKIPPED),
)  # fmt: skip
STATUSES = tuple(st.label for st in sorted(OrderStatus))

# Indexes into State.counters.
C_CASH = 0  # real book cash, micro-USD
C_ORDERS = 1  # rows used in the order table
C_FILLS = 2  # rows used in the fill table
C_ALLOCS = 3  # rows used in the allocation table
C_MONTH = 4  # calendar month id of the latest minute
C_MONTH_SHARES = 5  # shares traded this calendar month (tiered schedule)
C_FIRST_ALLOC_DONE = 6  # 1 once this session's first allocation with eligible symbols ran
C_AFTER_FLATTEN = 7  # 1 after this session's flatten was decided
C_CARRIES = 8  # overnight carries counted so far
C_BENCH_CASH = 9  # benchmark cash, micro-USD
C_STARTED_RUN = 10  # 1 once the first non-warm-up minute was processed
C_HALTED = 11  # 1 once this session's daily-loss halt tripped (cleared at the next session)
C_SETTLE_T1 = 12  # 1: settlement T+1 (KernelParams.settle_t1, for the fills booked outside a step)
C_PENDING = 13  # settlement T+1: the settlement day's sale proceeds, micro-USD, not yet spendable
C_SETTLE_FROM = 14  # label of the settlement day's first bar or fill (-1: none yet)
N_COUNTERS = 15


class KernelParams(NamedTuple):
    """Strategy, allocator and session parameters in the flat form the kernel takes."""

    step: float
    buffer: float
    shadow_notional: float
    hold_overnight: bool
    quiet_window: int
    min_history_bars: int
    min_quiet_volume: float
    scorer: int
    score_shift_epsilon: float
    top_k: int
    rebalance_tolerance: float
    max_commission_bps: float
    cash_reserve: float
    bench_allotment_micro: int  # initial cash / number of symbols, for buy-and-hold
    simulate_fills: bool  # backtest: the kernel fills orders; paper/live: the broker does
    # [risk] limits, 0 = none (risk.checks; the same in every mode)
    max_position_value: float
    max_gross_exposure: float
    max_orders_per_minute: int
    max_daily_loss: float
    settle_t1: bool  # [portfolio] settlement = "T+1": buys only with settled cash


class State(NamedTuple):
    """Everything the engine knows between minutes, as arrays indexed by symbol."""

    counters: np.ndarray  # int64 (N_COUNTERS,)
    band_has: np.ndarray  # bool: the symbol has a band (saw a bar this session)
    band_ref: np.ndarray  # float64
    band_level: np.ndarray  # float64, percent
    band_long: np.ndarray  # bool
    last_close: np.ndarray  # float64, NaN until the first bar
    position: np.ndarray  # int64 shares
    working: np.ndarray  # int64 order id of the working order, -1 if none
    budget: np.ndarray  # float64 USD, from the latest allocator run
    shadow_shares: np.ndarray  # int64
    shadow_pending: np.ndarray  # int64 signed shares to fill at the next bar (0 none)
    shadow_entry_open: np.ndarray  # float64 open of the entry fill bar
    shadow_entry_cost: np.ndarray  # float64 buy value + buy commission of the open position
    shadow_realised: np.ndarray  # float64 today's closed round trips, net of costs
    qv_started: np.ndarray  # bool: the symbol's first regular-session bar has been seen
    qv_count: np.ndarray  # int64 minutes in the window
    qv_head: np.ndarray  # int64 ring index of the oldest minute once full
    qv_ring: np.ndarray  # float64 (S, W) volumes in arrival order
    qv_sorted: np.ndarray  # float64 (S, W) the same volumes, sorted ascending
    bench_shares: np.ndarray  # int64
    bench_bought: np.ndarray  # bool
    bench_price: np.ndarray  # float64 fill price of the benchmark buy
    bench_commission: np.ndarray  # int64 micro-USD
    bench_time: np.ndarray  # int64 ns, label of the fill bar
    day_start_equity: np.ndarray  # float64 (1,): equity at this session's first bar close


class OrderTable(NamedTuple):
    decided_ns: np.ndarray  # int64: close time of the decision bar
    symbol: np.ndarray  # int32
    side: np.ndarray  # int8 (+1 BUY, -1 SELL)
    quantity: np.ndarray  # int64
    reason: np.ndarray  # int8
    status: np.ndarray  # int8
    filled: np.ndarray  # int64
    value: np.ndarray  # float64 filled value (commission basis)
    rated: np.ndarray  # float64 sum(rate x shares) over fills (tiered)
    requested: np.ndarray  # int64 quantity the strategy decided, before any risk cut
    risk: np.ndarray  # int8 risk.checks code of the limit that cut or sent it (0 none)


class FillTable(NamedTuple):
    order_id: np.ndarray  # int64
    time_ns: np.ndarray  # int64: label (start) of the fill bar
    symbol: np.ndarray  # int32
    side: np.ndarray  # int8
    quantity: np.ndarray  # int64
    price: np.ndarray  # float64
    commission: np.ndarray  # int64 micro-USD
    slippage: np.ndarray  # float64 USD


class AllocTable(NamedTuple):
    time_ns: np.ndarray  # int64 decision time
    symbol: np.ndarray  # int32
    score: np.ndarray  # float64 weight numerator (after first-allocation rule and shift)
    raw_score: np.ndarray  # float64 scorer output
    budget: np.ndarray  # float64
    target: np.ndarray  # int64
    quiet_volume: np.ndarray  # float64
    shadow_return: np.ndarray  # float64 percent
    price: np.ndarray  # float64
    eligible: np.ndarray  # bool


class MinuteOut(NamedTuple):
    cash: np.ndarray  # int64 micro-USD, per minute
    positions_value: np.ndarray  # float64
    bench_equity: np.ndarray  # float64
    halted: np.ndarray  # int8, 1 at the bar close where the daily-loss halt tripped


NS_MINUTE = NS_PER_MINUTE
_Table = TypeVar("_Table", OrderTable, FillTable, AllocTable)


def new_state(n_symbols: int, quiet_window: int, initial_cash: float) -> State:
    """A fresh engine state: all cash, no bands, empty windows."""
    s = n_symbols
    counters = np.zeros(N_COUNTERS, dtype=np.int64)
    counters[C_CASH] = to_micro(initial_cash)
    counters[C_BENCH_CASH] = counters[C_CASH]
    counters[C_MONTH] = -1
    counters[C_SETTLE_FROM] = -1
    return State(
        counters=counters,
        band_has=np.zeros(s, np.bool_),
        band_ref=np.zeros(s),
        band_level=np.zeros(s),
        band_long=np.zeros(s, np.bool_),
        last_close=np.full(s, np.nan),
        position=np.zeros(s, np.int64),
        working=np.full(s, -1, np.int64),
        budget=np.zeros(s),
        shadow_shares=np.zeros(s, np.int64),
        shadow_pending=np.zeros(s, np.int64),
        shadow_entry_open=np.zeros(s),
        shadow_entry_cost=np.zeros(s),
        shadow_realised=np.zeros(s),
        qv_started=np.zeros(s, np.bool_),
        qv_count=np.zeros(s, np.int64),
        qv_head=np.zeros(s, np.int64),
        qv_ring=np.zeros((s, quiet_window)),
        qv_sorted=np.zeros((s, quiet_window)),
        bench_shares=np.zeros(s, np.int64),
        bench_bought=np.zeros(s, np.bool_),
        bench_price=np.full(s, np.nan),
        bench_commission=np.zeros(s, np.int64),
        bench_time=np.zeros(s, np.int64),
        day_start_equity=np.full(1, np.nan),
    )


def new_orders(capacity: int) -> OrderTable:
    return OrderTable(
        decided_ns=np.zeros(capacity, np.int64),
        symbol=np.zeros(capacity, np.int32),
        side=np.zeros(capacity, np.int8),
        quantity=np.zeros(capacity, np.int64),
        reason=np.zeros(capacity, np.int8),
        status=np.zeros(capacity, np.int8),
        filled=np.zeros(capacity, np.int64),
        value=np.zeros(capacity),
        rated=np.zeros(capacity),
        requested=np.zeros(capacity, np.int64),
        risk=np.zeros(capacity, np.int8),
    )


def new_fills(capacity: int) -> FillTable:
    return FillTable(
        order_id=np.zeros(capacity, np.int64),
        time_ns=np.zeros(capacity, np.int64),
        symbol=np.zeros(capacity, np.int32),
        side=np.zeros(capacity, np.int8),
        quantity=np.zeros(capacity, np.int64),
        price=np.zeros(capacity),
        commission=np.zeros(capacity, np.int64),
        slippage=np.zeros(capacity),
    )


def new_allocs(capacity: int) -> AllocTable:
    return AllocTable(
        time_ns=np.zeros(capacity, np.int64),
        symbol=np.zeros(capacity, np.int32),
        score=np.zeros(capacity),
        raw_score=np.zeros(capacity),
        budget=np.zeros(capacity),
        target=np.zeros(capacity, np.int64),
        quiet_volume=np.zeros(capacity),
        shadow_return=np.zeros(capacity),
        price=np.zeros(capacity),
        eligible=np.zeros(capacity, np.bool_),
    )


def new_minute_out(n_minutes: int) -> MinuteOut:
    return MinuteOut(
        cash=np.zeros(n_minutes, np.int64),
        positions_value=np.zeros(n_minutes),
        bench_equity=np.zeros(n_minutes),
        halted=np.zeros(n_minutes, np.int8),
    )


def grow(table: _Table, capacity: int) -> _Table:
    """A copy of a table (OrderTable, FillTable, AllocTable) with more rows."""
    cols = []
    for col in table:
        bigger = np.zeros(capacity, dtype=col.dtype)
        bigger[: col.shape[0]] = col
        cols.append(bigger)
    return type(table)(*cols)


# ----------------------------------------------------------------------- orders


@jit(inline=True)
def _end_order(orders: OrderTable, oid: int, status: int) -> None:
    """Finish a working order: cancelled/replaced, or partially_filled if it had fills."""
    if orders.status[oid] != S_WORKING:
        return
    if orders.filled[oid] > 0:
        orders.status[oid] = S_PARTIAL
    else:
        orders.status[oid] = status


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
    orders.decided_ns[oid] = decided_ns
    orders.symbol[oid] = s
    orders.side[oid] = side
    orders.quantity[oid] = qty
    orders.reason[oid] = reason
    orders.status[oid] = status
    orders.filled[oid] = 0
    orders.value[oid] = 0.0
    orders.rated[oid] = 0.0
    orders.requested[oid] = qty
    orders.risk[oid] = 0
    st.counters[C_ORDERS] = oid + 1
    if status == S_WORKING:
        old = st.working[s]
        if old >= 0:
            _end_order(orders, old, S_REPLACED)
        st.working[s] = oid
    return oid


@jit(inline=True)
def _cancel_working(st: State, orders: OrderTable, s: int) -> None:
    oid = st.working[s]
    if oid >= 0:
        _end_order(orders, oid, S_CANCELLED)
        st.working[s] = -1


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
    oid = st.working[s]
    if oid < 0:
        return 0
    return orders.side[oid] * (orders.quantity[oid] - orders.filled[oid])


@jit(inline=True)
def _rebalance_may_act(
    s: int,
    band_long: np.ndarray,
    budget: np.ndarray,
    last_close: np.ndarray,
    position: np.ndarray,
    working: np.ndarray,
    o_side: np.ndarray,
    o_quantity: np.ndarray,
    o_filled: np.ndarray,
    tolerance: float,
) -> bool:
    """False when the rebalance rule certainly decides nothing for this symbol (most
    symbols at most allocator runs): a cheap test on arrays before the full rule."""
    price = last_close[s]
    if not (price > 0.0):
        return False
    target = 0
    if band_long[s] and budget[s] > 0.0:
        target = int(math.floor(budget[s] / price))
    effective = position[s]
    wid = working[s]
    if wid >= 0:
        effective += o_side[wid] * (o_quantity[wid] - o_filled[wid])
    if target == effective:
        return False
    return not (
        target != 0 and effective != 0 and abs(target - effective) * price < tolerance * budget[s]
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
    price = st.last_close[s]
    if not (price > 0.0):
        return
    pos = st.position[s]
    target = 0
    if st.band_long[s] and st.budget[s] > 0.0:
        target = int(math.floor(st.budget[s] / price))
    wid = st.working[s]
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
                and orders.side[wid] == SELL
                and orders.quantity[wid] - orders.filled[wid] == pos
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
    if effective != 0 and abs(target - effective) * price < kp.rebalance_tolerance * st.budget[s]:
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
    for s in range(st.position.shape[0]):
        wid = st.working[s]
        pos = st.position[s]
        if (
            wid >= 0
            and orders.reason[wid] == R_FLATTEN
            and orders.quantity[wid] - orders.filled[wid] == pos
        ):
            continue  # a flatten carried from an earlier session is still working
        _cancel_working(st, orders, s)
        if pos > 0:
            _new_order(st, orders, s, SELL, pos, R_FLATTEN, decided_ns, S_WORKING)


# ------------------------------------------------------------------------ fills


@jit(inline=True)
def _fill_one(
    oid: int,
    s: int,
    bar_open: float,
    bar_volume: float,
    label_ns: int,
    st: State,
    orders: OrderTable,
    fills: FillTable,
    cp: CostParams,
) -> None:
    side = orders.side[oid]
    remaining = orders.quantity[oid] - orders.filled[oid]
    qty, price, value_micro, comm_micro, rated = match_in_bar(
        side,
        remaining,
        st.position[s],
        bar_open,
        bar_volume,
        orders.reason[oid] == R_FLATTEN,
        _spendable_micro(st, label_ns),
        float(st.counters[C_MONTH_SHARES]),
        float(orders.filled[oid]),
        orders.value[oid],
        orders.rated[oid],
        cp,
    )
    if qty <= 0:
        return
    slippage = qty * slippage_per_share(bar_open, cp)
    book_fill(
        oid, qty, price, value_micro, comm_micro, slippage, rated, label_ns, st, orders, fills
    )


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
    s = orders.symbol[oid]
    side = orders.side[oid]
    fid = st.counters[C_FILLS]
    fills.order_id[fid] = oid
    fills.time_ns[fid] = label_ns
    fills.symbol[fid] = s
    fills.side[fid] = side
    fills.quantity[fid] = qty
    fills.price[fid] = price
    fills.commission[fid] = commission_micro
    fills.slippage[fid] = slippage
    st.counters[C_FILLS] = fid + 1
    if side == BUY:
        st.counters[C_CASH] -= value_micro + commission_micro
        st.position[s] += qty
    else:
        st.counters[C_CASH] += value_micro - commission_micro
        st.position[s] -= qty
        if st.counters[C_SETTLE_T1] == 1:
            _settlement_day(st, label_ns)
            st.counters[C_PENDING] += value_micro - commission_micro
    st.counters[C_MONTH_SHARES] += qty
    orders.filled[oid] += qty
    orders.value[oid] += qty * price
    orders.rated[oid] += rated
    if orders.filled[oid] >= orders.quantity[oid]:
        orders.status[oid] = S_FILLED
        if st.working[s] == oid:
            st.working[s] = -1


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
    n_sym = st.working.shape[0]
    ids = np.empty(n_sym, np.int64)
    n = 0
    for s in range(n_sym):
        wid = st.working[s]
        if wid >= 0 and not math.isnan(o[m, s]):
            ids[n] = wid
            n += 1
    if n == 0:
        return
    key = np.empty(
        n
    )  # order ids (far below 2**53) ranked by stable_order: numba's sorts compile slowly
    for i in range(n):
        key[i] = ids[i]
    rank = stable_order(key, False)
    for pass_side in (SELL, BUY):
        for i in range(n):
            oid = ids[rank[i]]
            if orders.side[oid] != pass_side or orders.status[oid] != S_WORKING:
                continue
            s = orders.symbol[oid]
            _fill_one(oid, s, o[m, s], v[m, s], label_ns, st, orders, fills, cp)


@jit(inline=True)
def _fill_shadow(s: int, bar_open: float, st: State, cp: CostParams) -> None:
    """Shadow orders fill in full at the next bar's open with slippage and commission."""
    q = st.shadow_pending[s]
    if q > 0:
        price = fill_price(bar_open, BUY, cp)
        value = q * price
        comm = order_commission(BUY, q, value, q * cp.tier_rates[0], cp)
        shadow_open(
            s, q, bar_open, value + comm, st.shadow_shares, st.shadow_entry_open,
            st.shadow_entry_cost,
        )  # fmt: skip
    elif q < 0:
        n = -q
        price = fill_price(bar_open, SELL, cp)
        value = n * price
        comm = order_commission(SELL, n, value, n * cp.tier_rates[0], cp)
        shadow_close(s, value - comm, st.shadow_shares, st.shadow_entry_cost, st.shadow_realised)
    st.shadow_pending[s] = 0


# -------------------------------------------------------------------- allocator


@jit()
def _run_allocator(
    decided_ns: int,
    st: State,
    allocs: AllocTable,
    kp: KernelParams,
    qv: np.ndarray,
    window_n: np.ndarray,
) -> None:
    n = st.position.shape[0]
    ret = np.zeros(n)
    raw = np.zeros(n)
    eligible = np.zeros(n, np.bool_)
    caps = np.zeros(n)
    any_eligible = False
    equity = st.counters[C_CASH] / 1e6
    last_close = st.last_close
    position = st.position
    band_has = st.band_has
    realised = st.shadow_realised
    shares = st.shadow_shares
    entry_open = st.shadow_entry_open
    for s in range(n):
        price = last_close[s]
        if position[s] != 0:
            equity += position[s] * price
        ret[s] = shadow_return_today(
            band_has, realised, shares, entry_open, last_close, s, kp.shadow_notional
        )
        raw[s] = raw_score(kp.scorer, ret[s], qv[s], price)
        if is_eligible(window_n[s], qv[s], price, kp.min_history_bars, kp.min_quiet_volume):
            eligible[s] = True
            any_eligible = True
            caps[s] = qv[s] * price
    scores = raw.copy()
    if any_eligible and st.counters[C_FIRST_ALLOC_DONE] == 0:
        for s in range(n):
            scores[s] = 1.0
        st.counters[C_FIRST_ALLOC_DONE] = 1
    w, budget = allocate(
        scores, eligible, caps, equity - kp.cash_reserve, kp.top_k, kp.score_shift_epsilon
    )
    row = st.counters[C_ALLOCS]
    for s in range(n):
        st.budget[s] = budget[s]
        price = st.last_close[s]
        target = 0
        if st.band_long[s] and budget[s] > 0.0 and price > 0.0:
            target = int(math.floor(budget[s] / price))
        allocs.time_ns[row] = decided_ns
        allocs.symbol[row] = s
        allocs.score[row] = w[s]
        allocs.raw_score[row] = raw[s]
        allocs.budget[row] = budget[s]
        allocs.target[row] = target
        allocs.quiet_volume[row] = qv[s]
        allocs.shadow_return[row] = ret[s]
        allocs.price[row] = price
        allocs.eligible[row] = eligible[s]
        row += 1
    st.counters[C_ALLOCS] = row


# ------------------------------------------------------------------------- risk


@jit()
def _check_daily_loss(
    m: int, decided_ns: int, st: State, orders: OrderTable, out: MinuteOut, limit: float
) -> None:
    """At a bar close, before anything is decided: remember the session's first equity; when
    equity is `limit` USD or more below it, flatten and decide nothing more this session."""
    equity = st.counters[C_CASH] / 1e6
    for s in range(st.position.shape[0]):
        if st.position[s] != 0:
            equity += st.position[s] * st.last_close[s]
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
        orders.risk[oid] = RISK_DAILY_LOSS
    st.counters[C_AFTER_FLATTEN] = 1


@jit()
def _cut_new_buys(first_new: int, st: State, orders: OrderTable, kp: KernelParams) -> None:
    cut_new_buys(
        first_new, st.counters[C_ORDERS], kp.max_position_value, kp.max_gross_exposure,
        kp.max_orders_per_minute, st.position, st.last_close, st.working, orders.symbol,
        orders.side, orders.quantity, orders.filled, orders.status, orders.risk,
    )  # fmt: skip


@jit(inline=True)
def _settlement_day(st: State, label_ns: int) -> None:
    """Settlement T+1: a bar or fill of a later session settles the pending sale proceeds."""
    start = st.counters[C_SETTLE_FROM]
    if start < 0 or label_ns - start >= SETTLEMENT_GAP_NS:
        st.counters[C_PENDING] = 0
        st.counters[C_SETTLE_FROM] = label_ns


@jit(inline=True)
def _spendable_micro(st: State, label_ns: int) -> int:
    """What buys may spend at `label_ns`: the cash, less unsettled proceeds under T+1."""
    if st.counters[C_SETTLE_T1] != 1:
        return st.counters[C_CASH]
    _settlement_day(st, label_ns)
    return st.counters[C_CASH] - st.counters[C_PENDING]


@jit()
def _cut_to_settled_cash(
    first_new: int, decided_ns: int, st: State, orders: OrderTable, cp: CostParams
) -> None:
    """Settlement T+1: new buys (in id order) are cut so that they, with the working buys
    decided before, cost no more than the settled cash (at the latest close, slippage and
    commission included); `risk` says RISK_SETTLED_CASH."""
    room = _spendable_micro(st, decided_ns - NS_MINUTE)
    rate = cp.tier_rates[0]
    month = float(st.counters[C_MONTH_SHARES])
    for s in range(st.position.shape[0]):
        wid = st.working[s]
        if 0 <= wid < first_new and orders.side[wid] == BUY and st.last_close[s] > 0.0:
            q = orders.quantity[wid] - orders.filled[wid]
            px = fill_price(st.last_close[s], BUY, cp)
            room -= to_micro(q * px) + to_micro(estimate_commission(BUY, q, px, month, cp))
    for oid in range(first_new, st.counters[C_ORDERS]):
        if orders.side[oid] != BUY or orders.status[oid] != S_WORKING:
            continue
        s = orders.symbol[oid]
        if not (st.last_close[s] > 0.0):
            continue
        px = fill_price(st.last_close[s], BUY, cp)
        asked = orders.quantity[oid]
        q = affordable_buy(asked, px, max(room, 0), month, 0.0, 0.0, rate, cp) if room > 0 else 0
        room -= to_micro(q * px) + to_micro(estimate_commission(BUY, q, px, month, cp))
        if q == asked:
            continue
        orders.risk[oid] = RISK_SETTLED_CASH
        if q > 0:
            orders.quantity[oid] = q
        else:
            orders.status[oid] = S_SKIPPED
            if st.working[s] == oid:
                st.working[s] = -1


# --------------------------------------------------------------------- the loop


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


@jit(nogil=True)
def run_minutes(  # noqa: C901 - the minute loop of STRATEGY.md in one compiled function; its rules are split out where numba allows
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
    (row alloc_row[m]), from allocation.quiet_volume.quiet_volume_pass_columns. Returns the index of the first minute not processed: m_stop, or earlier when a
    table has too little room left for one more minute (grow it and call again).
    """
    n_sym = o.shape[1]
    band_long = st.band_long
    budget = st.budget
    last_close = st.last_close
    position = st.position
    working = st.working
    o_side = orders.side
    o_quantity = orders.quantity
    o_filled = orders.filled
    cut_limits = (
        kp.max_position_value > 0.0 or kp.max_gross_exposure > 0.0 or kp.max_orders_per_minute > 0
    )
    st.counters[C_SETTLE_T1] = 1 if kp.settle_t1 else 0
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
            if (fl & F_FIRST) != 0:
                _session_start(st, kp)
                st.counters[C_STARTED_RUN] = 1
            if month_id[m] != st.counters[C_MONTH]:
                st.counters[C_MONTH] = month_id[m]
                st.counters[C_MONTH_SHARES] = 0
            # 1. fills at this bar's open
            if kp.simulate_fills:
                _fill_working(m, o, v, t, st, orders, fills, cp)
            for s in range(n_sym):
                if math.isnan(o[m, s]):
                    continue
                if st.shadow_pending[s] != 0:
                    _fill_shadow(s, o[m, s], st, cp)
                if not st.bench_bought[s]:
                    _bench_buy(s, o[m, s], t, st, kp, cp)
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
        signals = np.zeros(n_sym, np.int64)
        for s in range(n_sym):
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
        # 4. allocator, then orders, then the risk limits on the new ones
        first_new = st.counters[C_ORDERS]
        if not after_flatten:
            if (fl & F_ALLOC) != 0:
                r = alloc_row[m]
                _run_allocator(decided, st, allocs, kp, qv_at[r], qv_n[r])
            if (fl & F_FLATTEN) != 0 and not kp.hold_overnight:
                _flatten(st, orders, decided)
                for s in range(n_sym):
                    st.shadow_pending[s] = -st.shadow_shares[s]
                st.counters[C_AFTER_FLATTEN] = 1
            else:
                is_alloc = (fl & F_ALLOC) != 0
                for s in range(n_sym):
                    if signals[s] == 0 and not (
                        is_alloc
                        and _rebalance_may_act(
                            s,
                            band_long,
                            budget,
                            last_close,
                            position,
                            working,
                            o_side,
                            o_quantity,
                            o_filled,
                            kp.rebalance_tolerance,
                        )
                    ):
                        continue
                    _decide_symbol(s, signals[s], is_alloc, no_buys, decided, st, orders, kp, cp)
        if cut_limits and st.counters[C_ORDERS] > first_new:
            _cut_new_buys(first_new, st, orders, kp)
        if kp.settle_t1 and st.counters[C_ORDERS] > first_new:
            _cut_to_settled_cash(first_new, decided, st, orders, cp)
        # 5. marks
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
    return m_stop


@jit(inline=True)
def _bench_buy(
    s: int, bar_open: float, t: int, st: State, kp: KernelParams, cp: CostParams
) -> None:
    """Equal-weight buy-and-hold: spend the symbol's allotment at its first bar's open."""
    price = fill_price(bar_open, BUY, cp)
    rate = cp.tier_rates[0]
    qty = affordable_buy(1 << 40, price, kp.bench_allotment_micro, 0.0, 0.0, 0.0, rate, cp)
    st.bench_bought[s] = True
    st.bench_time[s] = t
    if qty <= 0:
        return
    comm = fill_commission_micro(BUY, 0.0, 0.0, 0.0, qty, qty * price, rate * qty, cp)
    st.bench_shares[s] = qty
    st.bench_price[s] = price
    st.bench_commission[s] = comm
    st.counters[C_BENCH_CASH] -= to_micro(qty * price) + comm

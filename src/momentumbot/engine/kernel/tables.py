"""The kernel's data: minute flags, order reasons and statuses as ints, the counters, the
parameter tuple, the engine state and the order, fill and allocation tables (with their
constructors and `grow`). Cash is integer micro-dollars. Nothing here is compiled; the
compiled modules read these constants and types.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np

from momentumbot.domain.orders import OrderStatus, Reason
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.execution.costs import to_micro

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

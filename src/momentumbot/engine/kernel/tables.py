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


# The State's per-symbol fields, packed by type into three (fields x symbols) arrays so that
# a compiled call passing the State pays reference counting on ten arrays, not twenty-five:
# row constants of State.floats ...
SF_BAND_REF = 0  # the band's reference price
SF_BAND_LEVEL = 1  # the band's level, percent
SF_LAST_CLOSE = 2  # NaN until the symbol's first bar
SF_BUDGET = 3  # USD, from the latest allocator run
SF_SHADOW_ENTRY_OPEN = 4  # open of the shadow book's entry fill bar
SF_SHADOW_ENTRY_COST = 5  # buy value + buy commission of the shadow book's open position
SF_SHADOW_REALISED = 6  # the shadow book's closed round trips today, net of costs
SF_BENCH_PRICE = 7  # fill price of the benchmark's buy (NaN until bought)
N_FLOATS = 8
# ... of State.ints ...
SI_POSITION = 0  # shares
SI_WORKING = 1  # order id of the working order, -1 if none
SI_SHADOW_SHARES = 2  # the shadow book's shares
SI_SHADOW_PENDING = 3  # signed shares the shadow book fills at the next bar (0 none)
SI_BENCH_SHARES = 4  # the benchmark's shares
SI_BENCH_COMMISSION = 5  # the benchmark buy's commission, micro-USD
SI_BENCH_TIME = 6  # ns, label of the benchmark's fill bar
N_INTS = 7
# ... and of State.bools
SB_BAND_HAS = 0  # the symbol has a band (saw a bar this session)
SB_BAND_LONG = 1  # the band is long
SB_BENCH_BOUGHT = 2  # the benchmark bought the symbol
N_BOOLS = 3


class State(NamedTuple):
    """Everything the engine knows between minutes, indexed by symbol: the per-symbol fields
    packed in `floats`, `ints` and `bools` (rows SF_*, SI_*, SB_*; compiled code indexes
    them, e.g. `st.ints[SI_POSITION, s]`), the quiet-volume windows (allocation.quiet_volume)
    as their own fields. Python code reads a field by its name (`st.position`: a view of
    its row, writable)."""

    counters: np.ndarray  # int64 (N_COUNTERS,)
    floats: np.ndarray  # float64 (N_FLOATS, S), rows SF_*
    ints: np.ndarray  # int64 (N_INTS, S), rows SI_*
    bools: np.ndarray  # bool (N_BOOLS, S), rows SB_*
    qv_started: np.ndarray  # bool: the symbol's first regular-session bar has been seen
    qv_count: np.ndarray  # int64 minutes in the window
    qv_head: np.ndarray  # int64 ring index of the oldest minute once full
    qv_ring: np.ndarray  # float64 (S, W) volumes in arrival order
    qv_sorted: np.ndarray  # float64 (S, W) the same volumes, sorted ascending
    day_start_equity: np.ndarray  # float64 (1,): equity at this session's first bar close

    @property
    def band_has(self) -> np.ndarray:
        return self.bools[SB_BAND_HAS]

    @property
    def band_ref(self) -> np.ndarray:
        return self.floats[SF_BAND_REF]

    @property
    def band_level(self) -> np.ndarray:
        return self.floats[SF_BAND_LEVEL]

    @property
    def band_long(self) -> np.ndarray:
        return self.bools[SB_BAND_LONG]

    @property
    def last_close(self) -> np.ndarray:
        return self.floats[SF_LAST_CLOSE]

    @property
    def position(self) -> np.ndarray:
        return self.ints[SI_POSITION]

    @property
    def working(self) -> np.ndarray:
        return self.ints[SI_WORKING]

    @property
    def budget(self) -> np.ndarray:
        return self.floats[SF_BUDGET]

    @property
    def shadow_shares(self) -> np.ndarray:
        return self.ints[SI_SHADOW_SHARES]

    @property
    def shadow_pending(self) -> np.ndarray:
        return self.ints[SI_SHADOW_PENDING]

    @property
    def shadow_entry_open(self) -> np.ndarray:
        return self.floats[SF_SHADOW_ENTRY_OPEN]

    @property
    def shadow_entry_cost(self) -> np.ndarray:
        return self.floats[SF_SHADOW_ENTRY_COST]

    @property
    def shadow_realised(self) -> np.ndarray:
        return self.floats[SF_SHADOW_REALISED]

    @property
    def bench_shares(self) -> np.ndarray:
        return self.ints[SI_BENCH_SHARES]

    @property
    def bench_bought(self) -> np.ndarray:
        return self.bools[SB_BENCH_BOUGHT]

    @property
    def bench_price(self) -> np.ndarray:
        return self.floats[SF_BENCH_PRICE]

    @property
    def bench_commission(self) -> np.ndarray:
        return self.ints[SI_BENCH_COMMISSION]

    @property
    def bench_time(self) -> np.ndarray:
        return self.ints[SI_BENCH_TIME]


# The order and fill tables are packed the same way: one int64 and one float64 array of
# (fields x rows), row constants OI_*/OF_* and FI_*/FF_*; Python reads a column by its name.
OI_DECIDED_NS = 0  # close time of the decision bar
OI_SYMBOL = 1
OI_SIDE = 2  # +1 BUY, -1 SELL
OI_QUANTITY = 3
OI_REASON = 4  # R_*
OI_STATUS = 5  # S_*
OI_FILLED = 6
OI_REQUESTED = 7  # the quantity the strategy decided, before any risk cut
OI_RISK = 8  # risk.checks code of the limit that cut or sent it (0 none)
N_ORDER_INTS = 9
OF_VALUE = 0  # filled value (commission basis)
OF_RATED = 1  # sum(rate x shares) over fills (tiered)
N_ORDER_FLOATS = 2

FI_ORDER_ID = 0
FI_TIME_NS = 1  # label (start) of the fill bar
FI_SYMBOL = 2
FI_SIDE = 3
FI_QUANTITY = 4
FI_COMMISSION = 5  # micro-USD
N_FILL_INTS = 6
FF_PRICE = 0
FF_SLIPPAGE = 1  # USD
N_FILL_FLOATS = 2


class OrderTable(NamedTuple):
    """One row per order: `ints` (N_ORDER_INTS, capacity) and `floats` (N_ORDER_FLOATS,
    capacity); `orders.side` etc. are views of their rows."""

    ints: np.ndarray  # int64, rows OI_*
    floats: np.ndarray  # float64, rows OF_*

    @property
    def decided_ns(self) -> np.ndarray:
        return self.ints[OI_DECIDED_NS]

    @property
    def symbol(self) -> np.ndarray:
        return self.ints[OI_SYMBOL]

    @property
    def side(self) -> np.ndarray:
        return self.ints[OI_SIDE]

    @property
    def quantity(self) -> np.ndarray:
        return self.ints[OI_QUANTITY]

    @property
    def reason(self) -> np.ndarray:
        return self.ints[OI_REASON]

    @property
    def status(self) -> np.ndarray:
        return self.ints[OI_STATUS]

    @property
    def filled(self) -> np.ndarray:
        return self.ints[OI_FILLED]

    @property
    def requested(self) -> np.ndarray:
        return self.ints[OI_REQUESTED]

    @property
    def risk(self) -> np.ndarray:
        return self.ints[OI_RISK]

    @property
    def value(self) -> np.ndarray:
        return self.floats[OF_VALUE]

    @property
    def rated(self) -> np.ndarray:
        return self.floats[OF_RATED]


class FillTable(NamedTuple):
    """One row per fill: `ints` (N_FILL_INTS, capacity) and `floats` (N_FILL_FLOATS,
    capacity); `fills.price` etc. are views of their rows."""

    ints: np.ndarray  # int64, rows FI_*
    floats: np.ndarray  # float64, rows FF_*

    @property
    def order_id(self) -> np.ndarray:
        return self.ints[FI_ORDER_ID]

    @property
    def time_ns(self) -> np.ndarray:
        return self.ints[FI_TIME_NS]

    @property
    def symbol(self) -> np.ndarray:
        return self.ints[FI_SYMBOL]

    @property
    def side(self) -> np.ndarray:
        return self.ints[FI_SIDE]

    @property
    def quantity(self) -> np.ndarray:
        return self.ints[FI_QUANTITY]

    @property
    def commission(self) -> np.ndarray:
        return self.ints[FI_COMMISSION]

    @property
    def price(self) -> np.ndarray:
        return self.floats[FF_PRICE]

    @property
    def slippage(self) -> np.ndarray:
        return self.floats[FF_SLIPPAGE]


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
    floats = np.zeros((N_FLOATS, s))
    floats[SF_LAST_CLOSE] = np.nan
    floats[SF_BENCH_PRICE] = np.nan
    ints = np.zeros((N_INTS, s), np.int64)
    ints[SI_WORKING] = -1
    return State(
        counters=counters,
        floats=floats,
        ints=ints,
        bools=np.zeros((N_BOOLS, s), np.bool_),
        qv_started=np.zeros(s, np.bool_),
        qv_count=np.zeros(s, np.int64),
        qv_head=np.zeros(s, np.int64),
        qv_ring=np.zeros((s, quiet_window)),
        qv_sorted=np.zeros((s, quiet_window)),
        day_start_equity=np.full(1, np.nan),
    )


def new_orders(capacity: int) -> OrderTable:
    return OrderTable(
        ints=np.zeros((N_ORDER_INTS, capacity), np.int64),
        floats=np.zeros((N_ORDER_FLOATS, capacity)),
    )


def new_fills(capacity: int) -> FillTable:
    return FillTable(
        ints=np.zeros((N_FILL_INTS, capacity), np.int64),
        floats=np.zeros((N_FILL_FLOATS, capacity)),
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


def capacity(table: _Table) -> int:
    """How many rows a table (OrderTable, FillTable, AllocTable) has room for."""
    return int(table[0].shape[-1])


def grow(table: _Table, rows: int) -> _Table:
    """A copy of a table (OrderTable, FillTable, AllocTable) with room for `rows` rows (the
    packed tables' arrays grow along their second axis)."""
    cols = []
    for i in range(len(table)):
        old: np.ndarray = table[i]
        bigger = np.zeros((*old.shape[:-1], rows), dtype=old.dtype)
        bigger[..., : old.shape[-1]] = old
        cols.append(bigger)
    return type(table)(*cols)

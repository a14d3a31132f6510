"""The kernel's data: minute flags, order reasons and statuses as ints, the counters, the
parameter tuple and the order, fill and allocation tables (with their constructors,
`capacity` and `grow`; the engine state is in `state`). Cash is integer micro-dollars. Nothing here is compiled; the
compiled modules read these constants and types.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import numpy as np

from momentumbot.domain.orders import OrderStatus, Reason
from momentumbot.domain.units import NS_PER_MINUTE

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

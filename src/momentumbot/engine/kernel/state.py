"""The engine state between minutes (`State`, `new_state`): its per-symbol fields packed by
type into three (fields x symbols) arrays with named rows, the quiet-volume windows as
their own fields. Nothing here is compiled; the compiled modules read these constants."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from momentumbot.engine.kernel.tables import (
    C_BENCH_CASH,
    C_CASH,
    C_MONTH,
    C_SETTLE_FROM,
    N_COUNTERS,
)
from momentumbot.execution.costs import to_micro

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
SI_BAND_RUNGS = 7  # the band's level in whole rungs (SF_BAND_LEVEL = rungs x step)
N_INTS = 8
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

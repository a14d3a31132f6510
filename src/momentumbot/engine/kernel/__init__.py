"""The compiled minute loop: band, shadow books, allocator, order rules, the [risk] limits
and fills for every symbol at once (STRATEGY.md sections 1-5). Backtest, sweeps, paper and
live all drive this code, so they all apply the same limits (risk.checks).

Owns: the engine state (`state`), the kernel's flags, counters, parameters and tables
(`tables`), the order rules (`orders`), fills and their booking (`fills`), the allocator's
run (`allocator`), the [risk] limits in the loop (`limits`) and the minute loop itself
(`loop`: `run_minutes`). Callers import every name from `momentumbot.engine.kernel`.

The rules live where their names are and are called from here: the band and the shadow
books in `strategy`, scorers, eligibility and budgets in `allocation`, fills and costs in
`execution`, the limits in `risk.checks`; the kernel keeps the order rules, the one
fill-booking function (`book_fill`, also used for the broker's fills) and the loop.

The kernel is time-major: it walks the minutes of a chunk of sessions and, at each one,
makes one pass over the symbols (the shadow fills at the open, the close, the band) and
then does only the work there is (the fills of working orders, the decisions of the
symbols with a signal, the allocator at its minutes). Cash is integer micro-dollars.

Numba counts references on every array inside a tuple handed to a compiled helper (an
atomic add and subtract per array per call, inlined or not): that was about half the
minute loop's time (perf, 100 x 250). So the state and the order and fill tables hold their
fields packed by type in a few 2-D arrays with named rows (`st.ints[SI_POSITION, s]`,
`orders.ints[OI_SIDE, oid]`; Python code reads `st.position`, `orders.side`, views of the
rows), the per-symbol helpers take scalars or those arrays, and the helpers that take the
tuples are compiled apart and called when they have work. Orders, fills and allocations go
into preallocated tables that the caller grows when the kernel stops early for lack of
room.
"""

from momentumbot.engine.kernel.fills import apply_fill, book_fill
from momentumbot.engine.kernel.loop import run_minutes
from momentumbot.engine.kernel.orders import _flatten, _new_order
from momentumbot.engine.kernel.state import (
    State,
    new_state,
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
    C_PENDING,
    C_SETTLE_FROM,
    C_SETTLE_T1,
    C_STARTED_RUN,
    F_ALLOC,
    F_FIRST,
    F_FLATTEN,
    F_LAST,
    F_NO_BUYS,
    F_WARMUP,
    N_COUNTERS,
    NS_MINUTE,
    R_ENTER,
    R_EXIT,
    R_FLATTEN,
    R_REBALANCE,
    REASONS,
    S_CANCELLED,
    S_FILLED,
    S_PARTIAL,
    S_REPLACED,
    S_SKIPPED,
    S_WORKING,
    STATUSES,
    AllocTable,
    FillTable,
    KernelParams,
    MinuteOut,
    OrderTable,
    capacity,
    grow,
    new_allocs,
    new_fills,
    new_minute_out,
    new_orders,
)
from momentumbot.execution.costs import BUY, SELL

__all__ = [
    "BUY",
    "C_AFTER_FLATTEN",
    "C_ALLOCS",
    "C_BENCH_CASH",
    "C_CARRIES",
    "C_CASH",
    "C_FILLS",
    "C_FIRST_ALLOC_DONE",
    "C_HALTED",
    "C_MONTH",
    "C_MONTH_SHARES",
    "C_ORDERS",
    "C_PENDING",
    "C_SETTLE_FROM",
    "C_SETTLE_T1",
    "C_STARTED_RUN",
    "F_ALLOC",
    "F_FIRST",
    "F_FLATTEN",
    "F_LAST",
    "F_NO_BUYS",
    "F_WARMUP",
    "NS_MINUTE",
    "N_COUNTERS",
    "REASONS",
    "R_ENTER",
    "R_EXIT",
    "R_FLATTEN",
    "R_REBALANCE",
    "SELL",
    "STATUSES",
    "S_CANCELLED",
    "S_FILLED",
    "S_PARTIAL",
    "S_REPLACED",
    "S_SKIPPED",
    "S_WORKING",
    "AllocTable",
    "FillTable",
    "KernelParams",
    "MinuteOut",
    "OrderTable",
    "State",
    "_flatten",
    "_new_order",
    "apply_fill",
    "book_fill",
    "capacity",
    "grow",
    "new_allocs",
    "new_fills",
    "new_minute_out",
    "new_orders",
    "new_state",
    "run_minutes",
]  # fmt: skip

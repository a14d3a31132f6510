"""The live console: one rich table of the bot's state, redrawn after every step."""

from __future__ import annotations

from typing import Any, Protocol

from momentumbot.engine.live import LiveEngine
from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.run import ny


class TraderView(Protocol):
    """What the console reads of a trader."""

    kind: str
    run_id: str
    account: str
    conn: ConnectionState

    @property
    def server_ns(self) -> int: ...
    @property
    def halted(self) -> str: ...
    @property
    def engine(self) -> LiveEngine | None: ...
    @property
    def session_start_equity(self) -> float | None: ...


def status_table(trader: TraderView) -> Any:
    """A rich renderable of the bot's state: connection, equity, P&L, positions, budgets."""
    from rich.table import Table

    e = trader.engine
    t = Table(
        title=f"momentumbot {trader.kind} {trader.run_id} — {trader.account} — "
        f"{ny(trader.server_ns)} — {trader.conn.describe()}",
        expand=False,
    )
    for col in ("symbol", "position", "last", "value", "budget", "target"):
        t.add_column(col, justify="right" if col != "symbol" else "left")
    if e is None or not e.started:
        return t
    alloc = e.last_allocation()
    for j, sym in enumerate(e.symbols):
        q = int(e.st.position[j])
        budget, target = alloc.get(sym, (0.0, 0))
        if not q and not budget:
            continue
        px = float(e.st.last_close[j])
        t.add_row(sym, f"{q:,}", f"{px:.2f}", f"{q * px:,.0f}", f"{budget:,.0f}", f"{target:,}")
    start = trader.session_start_equity or e.equity()
    t.caption = (
        f"equity {e.equity():,.2f}  cash {e.cash_micro / 1e6:,.2f}  today {e.equity() - start:+,.2f}"
        f"  orders {e.order_count()}  fills {e.fill_count()}"
        + (f"  HALTED: {trader.halted}" if trader.halted else "")
    )
    return t

"""An in-memory broker: the broker port (`execution.broker_protocol.Broker`) over bars held
in memory, on a clock the test moves, filling with the shared fill rule
(`execution.matching.match_in_bar`), so the trader's routing, booking, reconnect and resync
run in unit tests without TCP and without sleeps.

`advance()` closes the current minute: working orders placed before it fill against its bar
(sells first, then buys, in the order they arrived; a limit only at or better than its
price; orders whose ref starts with `cap_exempt_prefix` are exempt from the volume cap, as in
the backtest), their executions and commission reports go to the listener, and then the
bar goes to the streams. Order errors arrive as the IB adapter reports them after classifying
IB's codes: `reject_next` / `reject_sells` (a reject of a new order: it ends), `warn_orders` (a
note with every new order, which keeps working and fills, like 10349), `reject_modify` (a
modification refused: the original keeps working), `value_limit` (a new order worth more is
rejected with IB's 451 text). Events about a request (an order acknowledged, rejected, cancelled;
a dropped link) arrive on the next turn of the event loop, as from a socket. While the link
is down or connectivity is lost, orders still fill but nothing is delivered: the trader
finds those executions in the next snapshot, as with IB."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from momentumbot.data.source import BarReader
from momentumbot.domain.orders import Side
from momentumbot.domain.units import NS, NS_PER_MINUTE, usd_to_micro
from momentumbot.execution.broker_protocol import (
    AccountStatus,
    BarArrays,
    BrokerListener,
    BrokerSnapshot,
    BrokerUnavailable,
    ConnectionRefused,
    ExecReport,
    OnBar,
    OrderReport,
    StreamBar,
)
from momentumbot.execution.costs import CostParams, fill_price
from momentumbot.execution.matching import match_in_bar

PRICE_TOLERANCE = 1e-9


@dataclass
class FakeOrder:
    ref: str
    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    side: int
    quantity: int
    limit: float | None
    eligible_from_ns: int  # label of the first bar it may fill in
    exempt: bool
    filled: int = 0
    value: float = 0.0  # sum of qty x price (as the fill rule sees it)
    rated: float = 0.0
    status: str = "working"  # working | filled | cancelled
    why: str = ""

    def report(self) -> OrderReport:
        ib = {"working": "Submitted", "filled": "Filled", "cancelled": "Cancelled"}[self.status]
        return OrderReport(
            order_ref=self.ref, perm_id=self.perm_id, ib_order_id=self.order_id,
            client_id=self.client_id, symbol=self.symbol, side=self.side,
            quantity=self.quantity, filled=self.filled, status=self.status, ib_status=ib,
            why=self.why,
        )  # fmt: skip


@dataclass
class FakeBroker:
    """See the module docstring. Test controls: `advance`, `drop`, `refuse_connections`,
    `lose_connectivity`, `restore_connectivity`, `reject_next`, `reject_sells`, `warn_orders`,
    `reject_modify`, `value_limit`, `silent_clock`, `fail_history`, `end_stream`."""

    listener: BrokerListener
    source: BarReader
    now_ns: int  # the server's clock
    params: CostParams
    cash: float = 1_000_000.0
    account: str = "DU0000001"
    paper: bool = True
    client_id: int = 1
    cap_exempt_prefix: str = "flatten:"
    history_start_ns: int = 0
    connected: bool = False
    outage: bool = False
    refuse_connections: int = 0  # the next connects refused
    silent_clock: bool = False  # server-time requests go unanswered
    # bar subscriptions of these symbols ("*": every one) fail, as while IB's HMDS farm is down
    fail_history: set[str] = field(default_factory=set)
    exec_time_error_ns: int = 0  # execution times reported this far off (read in a wrong zone)
    reject_next: list[str] = field(default_factory=list)  # reasons for the next orders placed
    # reasons for the next exit / flatten sells placed
    reject_sells: list[str] = field(default_factory=list)
    warn_orders: tuple[str, str] | None = None  # (event, text) noted with every new order
    reject_modify: str = ""  # modifications are refused with this reason
    value_limit: float = 0.0  # USD; new orders worth more are rejected (0: off)
    account_type: str = "margin"  # what account_status() reports
    day_trades_remaining: int = -1  # what account_status() reports (-1: unlimited)
    modify_refusals: int = 0
    orders: dict[str, FakeOrder] = field(default_factory=dict)  # by ref
    placed: list[str] = field(default_factory=list)  # every ref placed, in order (resends too)
    executions: list[ExecReport] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    month_shares: dict[int, float] = field(default_factory=dict)
    connects: int = 0
    _cash_micro: int = 0
    _next_id: int = 1
    _streams: dict[str, OnBar] = field(default_factory=dict)
    subscribed: list[tuple[str, bool]] = field(default_factory=list)  # (symbol, realtime_bars)
    _bars: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cash_micro = usd_to_micro(self.cash)

    # ------------------------------------------------------------ link

    async def connect(self, *, allow_fallback: bool) -> None:
        if self.refuse_connections > 0:
            self.refuse_connections -= 1
            raise ConnectionRefused("the fake broker refuses connections")
        self.connected = True
        self.connects += 1

    async def disconnect(self) -> None:
        self._down()

    def drop(self) -> None:
        """The link drops: streams end, the listener hears it on the next turn."""
        was = self.connected
        self._down()
        if was:
            self._later(self.listener.on_disconnected)

    def _down(self) -> None:
        self.connected = False
        self._streams.clear()

    def end_stream(self, symbol: str, *, tell: bool = True) -> None:
        """One symbol's bar stream ends at the broker; the listener hears it (on the next
        turn) unless `tell` is False (a stream that goes silent without a word)."""
        self._streams.pop(symbol, None)
        if tell:
            self._later(
                lambda: self.listener.on_stream_lost(
                    symbol, "bar stream cancelled", no_market_data=False
                )
            )

    def lose_connectivity(self) -> None:
        self.outage = True
        self.listener.on_connectivity_lost()

    def restore_connectivity(self, *, data_lost: bool = False) -> None:
        self.outage = False
        self.listener.on_connectivity_restored(data_lost=data_lost)

    @property
    def delivering(self) -> bool:
        return self.connected and not self.outage

    def _later(self, fn: Callable[..., None], *args: Any) -> None:
        asyncio.get_running_loop().call_soon(fn, *args)

    def _need_link(self) -> None:
        if not self.connected:
            raise ConnectionError("the fake broker is not connected")

    def managed_accounts(self) -> list[str]:
        return [self.account]

    def account_is_paper(self, account: str) -> bool:
        return self.paper

    def raise_order_id_floor(self, next_id: int) -> None:
        self._next_id = max(self._next_id, next_id)

    # ------------------------------------------------------------ market data

    async def qualify(self, symbols: Sequence[str]) -> None:
        unknown = [s for s in symbols if s not in self.source.symbols()]
        if unknown:
            raise ConnectionError(f"unknown symbols {unknown}")

    async def market_data_problems(
        self, symbols: Sequence[str], wait_seconds: float, *, keep: bool = False
    ) -> dict[str, str]:
        return {}

    def quote(self, symbol: str) -> tuple[float, float]:
        return math.nan, math.nan

    def _arrays(self, symbol: str) -> Any:
        bars = self._bars.get(symbol)
        if bars is None:
            end = self.now_ns + 400 * 24 * 3600 * 10**9
            bars = self._bars[symbol] = self.source.read_arrays(symbol, self.history_start_ns, end)
        return bars

    async def subscribe_bars(
        self, symbol: str, duration: str, on_bar: OnBar, *, realtime_bars: bool = False
    ) -> BarArrays:
        """Every closed bar so far (the trader keeps what it needs), then the stream (the
        same closed bars whichever way IB would make them: `realtime_bars` changes nothing)."""
        self._need_link()
        if symbol in self.fail_history or "*" in self.fail_history:
            raise BrokerUnavailable(f"{symbol}: historical data request failed: error 162")
        self.subscribed.append((symbol, realtime_bars))
        b = self._arrays(symbol)
        n = int(np.searchsorted(b.ts, self.now_ns - NS_PER_MINUTE, side="right"))
        self._streams[symbol] = on_bar
        return BarArrays(b.ts[:n], b.open[:n], b.high[:n], b.low[:n], b.close[:n], b.volume[:n])

    def _bar(self, symbol: str, label: int) -> tuple[float, float, float] | None:
        b = self._arrays(symbol)
        i = int(np.searchsorted(b.ts, label))
        if i < b.ts.shape[0] and int(b.ts[i]) == label:
            return float(b.open[i]), float(b.close[i]), float(b.volume[i])
        return None

    async def server_time_ns(self) -> int:
        self._need_link()
        if self.silent_clock:
            raise ConnectionError("server time: no answer")
        return self.now_ns - self.now_ns % NS

    # ------------------------------------------------------------ the clock

    def advance(self, minutes: int = 1) -> None:
        """Close the current minute (`minutes` times): fills, then the bars."""
        for _ in range(minutes):
            label = self.now_ns - self.now_ns % NS_PER_MINUTE
            self.now_ns = label + NS_PER_MINUTE
            bars = {s: bar for s in self.source.symbols() if (bar := self._bar(s, label))}
            self._match(label, bars)
            if self.delivering:
                for sym, on_bar in list(self._streams.items()):
                    if sym in bars:
                        o, c, v = bars[sym]
                        on_bar(sym, StreamBar(label, o, c, v))

    def _match(self, label: int, bars: dict[str, tuple[float, float, float]]) -> None:
        eligible = [
            o for o in self.orders.values()
            if o.status == "working" and o.symbol in bars and o.eligible_from_ns <= label
        ]  # fmt: skip
        eligible.sort(key=lambda o: (o.side != Side.SELL, o.perm_id))
        for order in eligible:
            self._fill(order, label, *bars[order.symbol])

    def _fill(self, o: FakeOrder, label: int, bar_open: float, _c: float, volume: float) -> None:
        if o.limit is not None:
            price = fill_price(bar_open, o.side, self.params)
            if o.side > 0 and price > o.limit + PRICE_TOLERANCE:
                return
            if o.side < 0 and price < o.limit - PRICE_TOLERANCE:
                return
        day = dt.datetime.fromtimestamp(label / NS, dt.UTC)
        month = day.year * 12 + day.month  # the tiered schedule counts shares per month
        qty, price, value_micro, commission, rated = match_in_bar(
            o.side, o.quantity - o.filled, self.positions.get(o.symbol, 0), bar_open, volume,
            o.exempt, self._cash_micro, self.month_shares.get(month, 0.0), float(o.filled),
            o.value, o.rated, self.params,
        )  # fmt: skip
        if qty <= 0:
            return
        self._cash_micro += -o.side * value_micro - commission
        self.positions[o.symbol] = self.positions.get(o.symbol, 0) + o.side * qty
        if not self.positions[o.symbol]:
            del self.positions[o.symbol]
        self.month_shares[month] = self.month_shares.get(month, 0.0) + qty
        o.filled += qty
        o.value += qty * price
        o.rated += rated
        if o.filled >= o.quantity:
            o.status = "filled"
        rep = ExecReport(
            exec_id=f"fake.{o.perm_id}.{len(self.executions) + 1}", order_ref=o.ref,
            perm_id=o.perm_id, ib_order_id=o.order_id, client_id=o.client_id,
            account=self.account, symbol=o.symbol, side=o.side, quantity=qty, price=price,
            time_ns=label + self.exec_time_error_ns, commission_micro=commission,
        )  # fmt: skip
        self.executions.append(rep)
        if self.delivering:
            self.listener.on_execution(_without_commission(rep))
            self.listener.on_commission(rep.exec_id, commission)
            self.listener.on_order_status(o.report())

    # ------------------------------------------------------------ orders

    def place(
        self, order_ref: str, symbol: str, side: int, quantity: int, *,
        limit_price: float | None = None,
    ) -> int:  # fmt: skip
        self._need_link()
        oid = self._next_id
        self._next_id += 1
        o = FakeOrder(
            ref=order_ref, order_id=oid, perm_id=1000 + oid, client_id=self.client_id,
            symbol=symbol, side=side, quantity=quantity, limit=limit_price,
            eligible_from_ns=self.now_ns - self.now_ns % NS_PER_MINUTE,
            exempt=order_ref.startswith(self.cap_exempt_prefix),
        )  # fmt: skip
        self.orders[order_ref] = o
        self.placed.append(order_ref)
        why = self._reject_reason(o)
        if why:
            o.status, o.why = "cancelled", why
            self._later(self.listener.on_order_rejected, order_ref, o.why)
        else:
            self._later(self._deliver_status, o)
            if self.warn_orders is not None:
                self._later(self.listener.on_order_note, order_ref, *self.warn_orders)
        return oid

    def _reject_reason(self, o: FakeOrder) -> str:
        if self.reject_next:
            return self.reject_next.pop(0)
        if o.side < 0 and self.reject_sells and o.ref.startswith(("exit:", "flatten:")):
            return self.reject_sells.pop(0)
        if self.value_limit > 0:
            value = o.quantity * (o.limit or self._last_close(o.symbol))
            if value > self.value_limit:
                return (
                    f"error 451: The order value {value:,.2f} USD exceeds the Total Value "
                    f"Limit of {self.value_limit:,.2f} USD (Precautionary Settings)."
                )
        return ""

    def _last_close(self, symbol: str) -> float:
        b = self._arrays(symbol)
        i = int(np.searchsorted(b.ts, self.now_ns - NS_PER_MINUTE, side="right")) - 1
        return float(b.close[i]) if i >= 0 else 0.0

    def _deliver_status(self, o: FakeOrder) -> None:
        if self.delivering:
            self.listener.on_order_status(o.report())

    def _working(self, order_ref: str) -> FakeOrder | None:
        o = self.orders.get(order_ref)
        return o if o is not None and o.status == "working" else None

    def cancel(self, order_ref: str) -> bool:
        o = self._working(order_ref)
        if o is None or not self.connected:
            return False
        o.status, o.why = "cancelled", "cancelled by the client"
        self._later(self._deliver_status, o)
        return True

    def modify_to_market(self, order_ref: str) -> bool:
        o = self._working(order_ref)
        if o is None or not self.connected:
            return False
        if self.reject_modify:
            self.modify_refusals += 1
            self._later(self.listener.on_modify_failed, order_ref, self.reject_modify)
            return True
        o.limit = None
        return True

    def adopt_open_orders(self) -> None:
        """The fake knows every order of its client already."""

    async def snapshot(self) -> BrokerSnapshot:
        self._need_link()
        orders = list(self.orders.values())
        return BrokerSnapshot(
            account=self.account,
            open_orders=[o.report() for o in orders if o.status == "working"],
            completed_orders=[o.report() for o in orders if o.status != "working"],
            executions=list(self.executions),
            positions=dict(self.positions),
            cash_micro=self._cash_micro,
            settled_cash_micro=self._cash_micro,
        )

    def account_status(self) -> AccountStatus:
        """A margin account (paper's kind) with no day-trade limit unless the test says."""
        net = self._cash_micro + sum(
            usd_to_micro(q * self._last_close(sym)) for sym, q in self.positions.items() if q
        )
        return AccountStatus(
            account_type=self.account_type,
            net_liquidation_micro=net,
            settled_cash_micro=self._cash_micro,
            day_trades_remaining=self.day_trades_remaining,
        )

    @property
    def cash_micro(self) -> int:
        return self._cash_micro


def _without_commission(rep: ExecReport) -> ExecReport:
    """Executions arrive before their commission report, as from IB."""
    from dataclasses import replace

    return replace(rep, commission_micro=None)

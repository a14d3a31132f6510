"""The broker port: what the trader asks of a broker (`Broker`), what a broker tells its
listener (`BrokerListener`), and the plain values both carry. No I/O and no ib_async: the
journal, reconciliation and the trader depend on this module and not on the IB adapter.

IB's vocabulary (error codes, ports, account prefixes, order types, bar objects) stays in
`execution.ib_broker`; what comes out of it is typed: a rejected order, a note on an order
that does not end it, a modification refused (the original keeps working), connectivity lost or restored, a `StreamBar`. `testing.fake_broker`
implements the same port in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from momentumbot.domain.errors import RetryLaterError
from momentumbot.domain.units import NS_PER_MINUTE


class BrokerUnavailable(RetryLaterError):
    """The broker cannot be reached or does not answer as it should."""


class ConnectionRefused(BrokerUnavailable):
    """Nothing listens on the broker's port (it is restarting, or not started)."""


class ClientIdInUse(BrokerUnavailable):
    """Another program holds the client id."""


@dataclass(frozen=True)
class ExecReport:
    """One execution as IB reported it."""

    exec_id: str
    order_ref: str
    perm_id: int
    ib_order_id: int
    client_id: int
    account: str
    symbol: str
    side: int  # +1 bought, -1 sold
    quantity: int
    price: float
    time_ns: int
    commission_micro: int | None  # None until the commission report arrives
    # earlier execution ids this one would correct (the broker's correction scheme; a known one
    # means this execution replaces it)
    replaces: tuple[str, ...] = ()

    @property
    def label_ns(self) -> int:
        """The minute (bar label) the execution happened in."""
        return self.time_ns - self.time_ns % NS_PER_MINUTE


@dataclass(frozen=True)
class OrderReport:
    """One order as IB reported it (open, completed, or a status change)."""

    order_ref: str
    perm_id: int
    ib_order_id: int
    client_id: int
    symbol: str
    side: int
    quantity: int
    filled: int
    status: str  # working | filled | cancelled
    ib_status: str
    why: str = ""


@dataclass(frozen=True)
class Funds:
    """What an account holds to pay for USD stock, as the broker reports it: the USD ledger,
    and the account's settled funds in its base currency with the rate to convert them (a
    USD base: the same money twice)."""

    base_currency: str  # "USD", or e.g. "EUR"
    usd_cash_micro: int | None  # the USD ledger's cash (IB: CashBalance in USD)
    settled_base_micro: int | None  # settled funds, in the base currency (IB: SettledCash)
    base_per_usd: float | None  # base-currency units per USD (IB: ExchangeRate of USD)

    @property
    def is_usd(self) -> bool:
        return self.base_currency == "USD"

    @property
    def settled_usd_micro(self) -> int | None:
        """The settled funds converted to USD at the broker's rate (None if unknown)."""
        if self.settled_base_micro is None or not self.base_per_usd:
            return None
        return round(self.settled_base_micro / self.base_per_usd)


@dataclass
class BrokerSnapshot:
    """What IB knows, for reconciliation."""

    account: str
    open_orders: list[OrderReport]
    completed_orders: list[OrderReport]
    executions: list[ExecReport]
    positions: dict[str, int]
    cash_micro: int | None
    # IB's average cost per share of each position (commissions included), where reported
    avg_costs: dict[str, float] = field(default_factory=dict)
    settled_cash_micro: int | None = None  # SettledCash (USD); None if not reported
    funds: Funds | None = None  # the cash ledgers (a non-USD base account); None if not reported


@dataclass(frozen=True)
class AccountStatus:
    """What the account says about its type and limits (as the broker keeps it up to date)."""

    account_type: str  # "cash" | "margin" | "" (not reported)
    net_liquidation_micro: int | None
    settled_cash_micro: int | None
    day_trades_remaining: int | None  # the pattern-day-trader rule: -1 unlimited, None unknown
    # equity (USD) at the previous session's close, which the pattern-day-trader rule is judged
    # on; None if not reported
    previous_day_equity_micro: int | None = None
    base_currency: str = "USD"  # the account's; its figures above are converted to USD


@dataclass(frozen=True)
class BarArrays:
    ts: np.ndarray  # int64 UTC ns, bar start
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class StreamBar:
    """One 1-minute bar of a kept-up-to-date stream (the latest may still be forming)."""

    label_ns: int  # UTC ns, bar start
    open: float
    close: float
    volume: float


OnBar = Callable[[str, StreamBar], None]


class BrokerListener(Protocol):
    """What a broker tells the trader, as it happens."""

    def on_execution(self, report: ExecReport) -> None: ...
    def on_commission(self, exec_id: str, commission_micro: int) -> None: ...
    def on_order_status(self, report: OrderReport) -> None: ...
    def on_order_rejected(self, order_ref: str, why: str) -> None:
        """The broker refused or ended the order with an error (confirmed: it is not
        working at the broker)."""

    def on_modify_failed(self, order_ref: str, why: str) -> None:
        """A modification was refused; the original order keeps working."""

    def on_order_note(self, order_ref: str, event: str, text: str) -> None:
        """A message about an order that does not end it (a cancel confirmed or crossing a
        fill, an order that cannot be cancelled any more): journaled as `event`."""

    def on_connectivity_lost(self) -> None:
        """The broker lost its own link to the exchange; the socket is still up."""

    def on_connectivity_restored(self, *, data_lost: bool) -> None: ...
    def on_disconnected(self) -> None: ...
    def on_stream_lost(self, symbol: str, why: str, *, no_market_data: bool) -> None:
        """One symbol's bar stream ended or was refused (the others go on); `no_market_data`:
        the broker has no market data for it now (its line limit was reached)."""


class Broker(Protocol):
    """What the trader calls. Orders are named by their client order id (`order_ref`)."""

    client_id: int
    account: str

    @property
    def connected(self) -> bool: ...
    async def connect(self, *, allow_fallback: bool) -> None:
        """Raises ConnectionRefused, ClientIdInUse or BrokerUnavailable with what to check."""

    async def disconnect(self) -> None: ...
    def drop(self) -> None:
        """Close the link as if it had dropped (the reconnect follows)."""

    def managed_accounts(self) -> list[str]: ...
    def account_is_paper(self, account: str) -> bool: ...
    def raise_order_id_floor(self, next_id: int) -> None: ...
    async def qualify(self, symbols: Sequence[str]) -> None: ...
    async def market_data_problems(
        self, symbols: Sequence[str], wait_seconds: float, *, keep: bool = False
    ) -> dict[str, str]: ...
    def quote(self, symbol: str) -> tuple[float, float]:
        """(bid, ask); NaN where unknown."""

    async def subscribe_bars(
        self, symbol: str, duration: str, on_bar: OnBar, *, realtime_bars: bool = False
    ) -> BarArrays:
        """History over `duration` ("N D": N sessions), then every later bar to `on_bar`
        (the old stream of the symbol ended first); with `realtime_bars` the later bars are
        made from 5-second real-time bars, not a kept-up-to-date history request."""

    async def server_time_ns(self) -> int: ...
    def place(
        self, order_ref: str, symbol: str, side: int, quantity: int, *,
        limit_price: float | None = None,
    ) -> int:  # fmt: skip
        """A market order, or a limit with `limit_price`; returns the broker's order id."""

    def cancel(self, order_ref: str) -> bool: ...
    def modify_to_market(self, order_ref: str) -> bool: ...
    def adopt_open_orders(self) -> None: ...
    async def snapshot(self) -> BrokerSnapshot: ...
    def account_status(self) -> AccountStatus:
        """The account's type, net liquidation, settled cash and day trades left, from the
        values the broker keeps up to date (no request)."""

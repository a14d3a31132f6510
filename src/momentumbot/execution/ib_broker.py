"""The IB broker adapter. It and its helpers (`ib_connect`: connecting; `ib_market`: market
data and bar streams; `ib_reports`: IB's objects as the port's values) are the only
production modules that import ib_async.

It owns one ib_async connection: connecting (client id in use: retry, then fall back), the
contracts, the market-data entitlement check, paced history and keepUpToDate 1-minute bar
streams (formatDate 2: UTC), the server's clock, orders carrying our client order id as
`orderRef`, executions and commission reports, and the snapshots reconciliation compares
with the journal. It implements the `Broker` port and keeps IB's vocabulary to itself: error
codes become typed listener events (rejected, note, connectivity lost / restored), bars become
`StreamBar`s, and the ports and account prefixes of paper and live are answered here. It
decides nothing: events go to a `BrokerListener`, and reconnection policy lives in
`trading.connection`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ib_async import (
    IB,
    Contract,
    ExecutionFilter,
    Order,
    RequestError,
    Stock,
    Trade,
)
from ib_async import Fill as IbFill

from momentumbot.domain.errors import DataError
from momentumbot.domain.units import usd_to_micro
from momentumbot.execution.broker_protocol import (
    AccountStatus,
    BarArrays,
    BrokerListener,
    BrokerSnapshot,
    BrokerUnavailable,
    ClientIdInUse,
    ConnectionRefused,
    ExecReport,
    OnBar,
)
from momentumbot.execution.ib_connect import BrokerSettings, connect
from momentumbot.execution.ib_exec_time import ExecTimes, tws_zone
from momentumbot.execution.ib_market import IbMarketData, ib_ns
from momentumbot.execution.ib_order_state import NOT_OPEN, IbOrderErrors
from momentumbot.execution.ib_reports import (
    account_status,
    cash_micro,
    exec_report,
    funds,
    order_report,
    settled_cash_micro,
    stock_avg_costs,
    stock_positions,
)

__all__ = [
    "BrokerSettings",
    "BrokerUnavailable",
    "ClientIdInUse",
    "ConnectionRefused",
    "IbBroker",
    "account_is_paper",
    "port_is_live",
]

log = logging.getLogger("momentumbot.broker")

UNSET_DOUBLE = 1.7976931348623157e308

CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED = 1102
SERVER_LINK_BROKEN = 2110  # TWS <-> IB's servers, often without 1100: as 1100
SOCKET_PORT_RESET = 1300  # TWS drops this connection: as a dropped socket
MARKET_FARM_OK = 2104
HMDS_BROKEN, HMDS_OK, HMDS_INACTIVE = 2105, 2106, 2107
PAPER_PORTS = (7497, 4002)  # TWS, IB Gateway
LIVE_PORTS = (7496, 4001)


def port_is_live(port: int) -> bool:
    """The port is a live port of TWS / IB Gateway."""
    return port in LIVE_PORTS


def account_is_paper(account: str) -> bool:
    """IB paper accounts start with D (DU...); live ones do not."""
    return account.upper().startswith("D")


class IbBroker:
    """One connection to TWS / IB Gateway through ib_async."""

    def __init__(self, settings: BrokerSettings, listener: BrokerListener) -> None:
        self.settings = settings
        self.listener = listener
        self.ib = IB()
        self.ib.RaiseRequestErrors = True
        self.exec_times = ExecTimes(tws_zone(settings.tws_timezone))
        self.exec_times.hook(self.ib.client.decoder)
        self.client_id = settings.client_id
        self.account = settings.account
        self.contracts: dict[str, Contract] = {}
        self._trades: dict[str, Trade] = {}  # orderRef -> Trade (this connection)
        self._ref_by_id: dict[int, str] = {}  # IB orderId (this client) -> orderRef
        self._orders_lock = asyncio.Lock()  # one open/completed-orders request at a time
        self.errors = IbOrderErrors(
            self.ib, listener, self._orders_lock, self._trades, settings.request_timeout
        )
        self.market = IbMarketData(
            self.ib, self.contracts, request_timeout=settings.request_timeout,
            requests_per_minute=settings.history_requests_per_minute,
            pacing_backoff=settings.pacing_backoff_seconds,
            max_retries=settings.max_history_retries,
            on_stream_lost=lambda sym, why, no_data: listener.on_stream_lost(
                sym, why, no_market_data=no_data
            ),
        )  # fmt: skip
        self._time_future: asyncio.Future[int] | None = None
        self._closing = False
        self._connect_errors: list[tuple[int, str]] = []
        self._link_broken = False  # 2110 seen, not restored yet
        ib = self.ib
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.orderStatusEvent += self._on_status

    # ------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self.ib.isConnected()

    async def connect(self, *, allow_fallback: bool) -> None:
        """Connect and synchronise. Error 326 (client id in use): retry the id for a few
        seconds (a crashed bot's socket closes lazily), then, with `allow_fallback`, try the
        next ids. Raises BrokerUnavailable with what to check."""
        self._connect_errors = []
        self.client_id = await connect(
            self.ib, self.settings, allow_fallback=allow_fallback, errors=self._connect_errors
        )

    async def disconnect(self) -> None:
        self._closing = True
        try:
            self.ib.disconnect()
        finally:
            await asyncio.sleep(0)
            self._closing = False

    def drop(self) -> None:
        """Close the socket as if it had dropped (tests)."""
        self.ib.client.conn.disconnect()

    def managed_accounts(self) -> list[str]:
        return list(self.ib.managedAccounts())

    def account_is_paper(self, account: str) -> bool:
        return account_is_paper(account)

    def raise_order_id_floor(self, next_id: int) -> None:
        """Never reuse an order id the journal has seen (a Gateway restart rolls them back)."""
        self.ib.client.updateReqId(next_id)

    def _on_disconnected(self) -> None:
        self._link_broken = False
        self.market.clear()
        self._trades.clear()
        self._ref_by_id.clear()
        self.errors.modifying.clear()
        if self._time_future is not None and not self._time_future.done():
            self._time_future.set_exception(ConnectionError("disconnected"))
        self._time_future = None
        if not self._closing:
            self.listener.on_disconnected()

    def _on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        if not self.ib.isConnected():  # still connecting: 326 tells why the socket closes
            self._connect_errors.append((code, text))
        if self._on_link_error(code, text):
            return
        if self.market.on_error(req_id, code, text):
            return
        ref = self._ref_by_id.get(req_id)
        if ref is not None:
            self.errors.on_error(ref, code, text)

    def _on_link_error(self, code: int, text: str) -> bool:
        """Connectivity and farm messages (True if `code` was one). 2110 is lost connectivity
        as 1100 is; it ends with 1101 / 1102, or a market data farm OK (2104) after it. 1300:
        TWS drops this connection; the socket is closed here too, so the reconnect starts.
        2105 / 2106 / 2107: the HMDS farm's state (a 162 "no data" while it is broken is a
        farm problem, not a symbol without data)."""
        if code in (CONNECTIVITY_LOST, SERVER_LINK_BROKEN):
            if code == SERVER_LINK_BROKEN:
                log.warning("2110: connectivity between TWS and IB's servers is broken")
                self._link_broken = True
            self.listener.on_connectivity_lost()
        elif code in (RESTORED, RESTORED_DATA_LOST) or (
            code == MARKET_FARM_OK and self._link_broken
        ):
            self._link_broken = False
            self.listener.on_connectivity_restored(data_lost=code == RESTORED_DATA_LOST)
        elif code == SOCKET_PORT_RESET:
            log.warning("1300: TWS reset its socket port (%s); reconnecting", text)
            if self.ib.isConnected():
                self.drop()
        elif code in (HMDS_BROKEN, HMDS_OK, HMDS_INACTIVE):
            self.market.hmds_broken = code == HMDS_BROKEN
            return False  # ib_async logs it; nothing else to do
        else:
            return False
        return True

    # ------------------------------------------------------------- contracts

    async def qualify(self, symbols: Sequence[str]) -> None:
        """US stocks on SMART; unknown symbols stop the run before anything is sent."""
        todo = [s for s in symbols if s not in self.contracts]
        if not todo:
            return
        unknown: list[str] = []
        for i in range(0, len(todo), 40):
            batch = todo[i : i + 40]
            contracts = [Stock(s, "SMART", "USD") for s in batch]
            results = await asyncio.gather(
                *(self._details(c) for c in contracts), return_exceptions=True
            )
            for sym, c, res in zip(batch, contracts, results, strict=True):
                if isinstance(res, BaseException) or not res:
                    unknown.append(sym)
                else:
                    self.contracts[sym] = c
        if unknown:
            raise DataError(
                f"unknown symbol{'s' if len(unknown) > 1 else ''} at the broker: "
                f"{', '.join(unknown)} (no security definition); fix `symbols` in the config"
            )

    async def _details(self, c: Contract) -> bool:
        try:
            details = await asyncio.wait_for(
                self.ib.reqContractDetailsAsync(c), self.settings.request_timeout
            )
        except RequestError as exc:
            if exc.code == 200:
                return False
            raise
        if not details:
            return False
        c.conId = details[0].contract.conId if details[0].contract else 0
        c.primaryExchange = details[0].contract.primaryExchange if details[0].contract else ""
        return True

    # ------------------------------------------------------------ market data

    async def market_data_problems(
        self, symbols: Sequence[str], wait_seconds: float, *, keep: bool = False
    ) -> dict[str, str]:
        return await self.market.problems(symbols, wait_seconds, keep=keep)

    def quote(self, symbol: str) -> tuple[float, float]:
        return self.market.quote(symbol)

    async def subscribe_bars(
        self, symbol: str, duration: str, on_bar: OnBar, *, realtime_bars: bool = False
    ) -> BarArrays:
        return await self.market.subscribe_bars(
            symbol, duration, on_bar, realtime_bars=realtime_bars
        )

    def cancel_streams(self) -> None:
        self.market.cancel_streams()

    @property
    def pacing_violations(self) -> int:
        return self.market.pacing_violations

    @property
    def history_requests(self) -> int:
        return self.market.history_requests

    # ------------------------------------------------------------------ time

    async def server_time_ns(self) -> int:
        """The server's clock (whole seconds), one request at a time."""
        fut = self._time_future
        if fut is None or fut.done():
            loop = asyncio.get_running_loop()
            fut = self._time_future = loop.create_future()
            task = asyncio.ensure_future(self._ask_time(fut))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        return await asyncio.shield(fut)

    async def _ask_time(self, fut: asyncio.Future[int]) -> None:
        try:
            t = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.settings.request_timeout)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(ConnectionError(f"server time: {exc!r}"))
            return
        if not fut.done():
            fut.set_result(ib_ns(t))

    # ---------------------------------------------------------------- orders

    def place(
        self,
        order_ref: str,
        symbol: str,
        side: int,
        quantity: int,
        *,
        limit_price: float | None = None,
    ) -> int:
        """Send a new order (market, or limit with `limit_price`); returns IB's orderId."""
        order = Order(
            action="BUY" if side > 0 else "SELL",
            totalQuantity=quantity,
            orderType="MKT" if limit_price is None else "LMT",
            tif="GTC",
            orderRef=order_ref,
            account=self.account,
            outsideRth=False,
        )
        if limit_price is not None:
            order.lmtPrice = limit_price
        trade = self.ib.placeOrder(self.contracts[symbol], order)
        self._trades[order_ref] = trade
        self._ref_by_id[trade.order.orderId] = order_ref
        return int(trade.order.orderId)

    def _trade(self, order_ref: str) -> Trade | None:
        trade = self._trades.get(order_ref)
        if trade is not None:
            return trade
        for t in self.ib.openTrades():
            if t.order.orderRef == order_ref and t.order.clientId in (self.client_id, 0):
                self._trades[order_ref] = t
                self._ref_by_id[t.order.orderId] = order_ref
                return t
        return None

    def _done(self, trade: Trade) -> bool:
        """Done at IB (not only in ib_async's view after an error)."""
        return trade.isDone() and trade.order.orderRef not in self.errors.kept

    def modify_to_market(self, order_ref: str) -> bool:
        trade = self._trade(order_ref)
        if trade is None or self._done(trade):
            return False
        trade.order.orderType = "MKT"
        trade.order.lmtPrice = UNSET_DOUBLE
        self.errors.modifying.add(order_ref)
        self.ib.placeOrder(trade.contract, trade.order)
        return True

    def cancel(self, order_ref: str) -> bool:
        """Cancel one of our orders; False if this connection does not know it as working."""
        trade = self._trade(order_ref)
        if trade is None or self._done(trade):
            return False
        self.ib.cancelOrder(trade.order)
        return True

    def adopt_open_orders(self) -> None:
        """Learn this client's open orders (after a reconnect) so their events reach us."""
        for t in self.ib.openTrades():
            ref = t.order.orderRef
            if ref and t.order.clientId == self.client_id:
                self._trades[ref] = t
                self._ref_by_id[t.order.orderId] = ref

    # ---------------------------------------------------------------- events

    def _on_exec(self, trade: Trade, fill: IbFill) -> None:
        self.listener.on_execution(self._report(fill, trade))

    def _on_commission(self, trade: Trade, fill: IbFill, report: Any) -> None:
        self.listener.on_commission(report.execId, usd_to_micro(report.commission))

    def _on_status(self, trade: Trade) -> None:
        ref = trade.order.orderRef
        if not ref:
            return
        self._ref_by_id.setdefault(trade.order.orderId, ref)
        if self.errors.on_status(ref, trade):
            self.listener.on_order_status(order_report(trade))

    def executions(self) -> list[ExecReport]:
        """Every execution this connection has seen (live and from the startup sync)."""
        return [self._report(f, None) for f in self.ib.fills()]

    def _report(self, fill: IbFill, trade: Trade | None) -> ExecReport:
        ex = fill.execution
        return exec_report(fill, trade, self.exec_times.time_ns(ex.execId, ex.time))

    # -------------------------------------------------------------- snapshot

    async def snapshot(self) -> BrokerSnapshot:
        """Open orders (all clients), completed orders, executions, positions and cash."""
        ib = self.ib
        to = self.settings.request_timeout
        account = self.account or (ib.managedAccounts() or [""])[0]
        async with self._orders_lock:
            open_trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), to)
            completed = await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), to)
        fills = await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter()), to)
        positions = await asyncio.wait_for(ib.reqPositionsAsync(), to)
        summary = await asyncio.wait_for(ib.accountSummaryAsync(account), to)
        known = {f.execution.execId: f for f in ib.fills()}
        execs = []
        for f in fills:
            better = known.get(f.execution.execId, f)
            execs.append(self._report(better, None))
        return BrokerSnapshot(
            account=account,
            open_orders=[
                order_report(t, inactive="working")  # Inactive among open orders: held
                for t in open_trades
                if t.orderStatus.status not in NOT_OPEN
            ],
            completed_orders=[order_report(t) for t in completed],
            executions=execs,
            positions=stock_positions(positions, account),
            cash_micro=cash_micro(summary, account),
            avg_costs=stock_avg_costs(positions, account),
            settled_cash_micro=settled_cash_micro(summary, account),
            funds=funds(summary, account),
        )

    def account_status(self) -> AccountStatus:
        account = self.account or (self.ib.managedAccounts() or [""])[0]
        return account_status(self.ib.accountValues(account), account)

"""The IB broker adapter: the only production module that imports ib_async.

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
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ib_async import (
    IB,
    BarDataList,
    Contract,
    ExecutionFilter,
    Order,
    RequestError,
    Stock,
    Ticker,
    Trade,
)
from ib_async import Fill as IbFill

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import NS, usd_to_micro
from momentumbot.execution.broker_protocol import (
    BarArrays,
    BrokerListener,
    BrokerSnapshot,
    BrokerUnavailable,
    ClientIdInUse,
    ConnectionRefused,
    ExecReport,
    OnBar,
    OrderReport,
    StreamBar,
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
CLIENT_ID_IN_USE = 326
MARKET_DATA_PROBLEMS = {
    354: "market data not subscribed",
    10090: "part of the market data is not subscribed",
    10167: "delayed market data shown instead of live",
    10168: "market data not subscribed (delayed not enabled)",
    10197: "no market data during competing live session",
    10186: "market data is not subscribed (delayed)",
}
ORDER_DONE = {"Filled": "filled", "Cancelled": "cancelled", "ApiCancelled": "cancelled",
              "Inactive": "cancelled"}  # fmt: skip
INFO_CODES = frozenset(range(2100, 2200)) | {399, 10167}
# order errors that do not end an order: cancel confirmations, a cancel or modify that crossed
# a fill (the fill's messages follow), an order that cannot be cancelled any more
ORDER_NOTE_CODES = frozenset({104, 161, 202, 10147, 10148})
MARKET_DATA_BATCH = 50
PAPER_PORTS = (7497, 4002)  # TWS, IB Gateway
LIVE_PORTS = (7496, 4001)


def port_is_live(port: int) -> bool:
    """The port is a live port of TWS / IB Gateway."""
    return port in LIVE_PORTS


def account_is_paper(account: str) -> bool:
    """IB paper accounts start with D (DU...); live ones do not."""
    return account.upper().startswith("D")


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    client_id_fallbacks: int = 3
    account: str = ""
    connect_timeout: float = 10.0
    request_timeout: float = 60.0
    history_requests_per_minute: float = 120.0
    pacing_backoff_seconds: float = 2.0
    max_history_retries: int = 8
    client_id_retry_seconds: float = 6.0

    @classmethod
    def from_config(
        cls,
        broker: BrokerConfig,
        *,
        host: str | None = None,
        port: int | None = None,
        client_id: int | None = None,
    ) -> BrokerSettings:
        return cls(
            host=host or broker.host,
            port=int(port if port is not None else broker.port),
            client_id=int(client_id if client_id is not None else broker.client_id),
            client_id_fallbacks=broker.client_id_fallbacks,
            account=broker.account,
            connect_timeout=broker.connect_timeout_seconds,
            request_timeout=broker.request_timeout_seconds,
            history_requests_per_minute=broker.history_requests_per_minute,
        )


class _Pacer:
    """At most `per_minute` request starts a minute (real time: IB's pacing is wall-clock)."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        delay = self._next - now
        self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


_micro = usd_to_micro


def _side(action: str) -> int:
    return 1 if action.upper() in ("BUY", "BOT") else -1


def _ns(t: Any) -> int:
    return int(round(t.timestamp())) * NS


def _stream_bar(bar: Any) -> StreamBar:
    return StreamBar(_ns(bar.date), float(bar.open), float(bar.close), float(bar.volume))


class IbBroker:
    """One connection to TWS / IB Gateway through ib_async."""

    def __init__(self, settings: BrokerSettings, listener: BrokerListener) -> None:
        self.settings = settings
        self.listener = listener
        self.ib = IB()
        self.ib.RaiseRequestErrors = True
        self.client_id = settings.client_id
        self.account = settings.account
        self.contracts: dict[str, Contract] = {}
        self._trades: dict[str, Trade] = {}  # orderRef -> Trade (this connection)
        self._ref_by_id: dict[int, str] = {}  # IB orderId (this client) -> orderRef
        self._streams: dict[str, BarDataList] = {}
        self._tickers: dict[str, Ticker] = {}
        self._mkt_req: dict[int, str] = {}
        self._md_problem: dict[str, str] = {}
        self._pacer = _Pacer(settings.history_requests_per_minute)
        self._time_future: asyncio.Future[int] | None = None
        self._closing = False
        self._connect_errors: list[tuple[int, str]] = []
        self.pacing_violations = 0
        self.history_requests = 0
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
        s = self.settings
        ids = [s.client_id]
        if allow_fallback:
            ids += [s.client_id + i for i in range(1, s.client_id_fallbacks + 1)]
        deadline = time.monotonic() + s.client_id_retry_seconds
        for i, cid in enumerate(ids):
            while True:
                try:
                    await self._connect_once(cid)
                except ClientIdInUse:
                    if i == 0 and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)
                        continue
                    log.warning("client id %d is in use", cid)
                    break
                if cid != s.client_id:
                    log.warning("client id %d was in use; connected as client %d", s.client_id, cid)
                return
        tried = ", ".join(str(c) for c in ids)
        raise ClientIdInUse(
            f"client id {tried} in use at {s.host}:{s.port} (error 326): another program "
            "(or a bot that has not let go yet) uses it; stop it or set [broker] client_id"
            + ("" if allow_fallback else "; this run has working orders that belong to it")
        )

    async def _connect_once(self, client_id: int) -> None:
        """One connection attempt. A refused connection fails at once (ConnectionRefused), and
        so does a socket the other side closes during the handshake; only a connection that
        opens and then says nothing waits for the connect timeout."""
        s = self.settings
        self._connect_errors = []
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[str] = loop.create_future()

        def on_api_error(msg: str) -> None:
            if not closed.done():
                closed.set_result(str(msg))

        def on_socket_closed(msg: str) -> None:
            on_api_error(msg or "the other side closed the socket")

        client = self.ib.client
        client.apiError += on_api_error
        client.conn.disconnected += on_socket_closed
        attempt = asyncio.ensure_future(
            self.ib.connectAsync(
                s.host,
                s.port,
                clientId=client_id,
                timeout=s.connect_timeout,
                raiseSyncErrors=True,
            )
        )
        try:
            await asyncio.wait({attempt, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done():
                await asyncio.sleep(0)  # the attempt ends in the same turn when it failed
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(BaseException):
                    await attempt
                with contextlib.suppress(Exception):
                    self.ib.disconnect()
                if any(code == CLIENT_ID_IN_USE for code, _ in self._connect_errors):
                    raise ClientIdInUse(f"client id {client_id} is in use")
                raise BrokerUnavailable(
                    f"{s.host}:{s.port} closed the connection during the API handshake "
                    f"({closed.result()}); is this the API port of TWS / IB Gateway, and is "
                    "this host allowed to connect (Trusted IPs)?"
                )
            attempt.result()
        except ConnectionRefusedError:
            raise ConnectionRefused(
                f"cannot connect to {s.host}:{s.port}: connection refused; is TWS / IB Gateway "
                "(or `momentumbot gateway`) running with its API on this port?"
            ) from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            if any(code == CLIENT_ID_IN_USE for code, _ in self._connect_errors):
                raise ClientIdInUse(f"client id {client_id} is in use") from None
            if not isinstance(exc, (TimeoutError, ConnectionError)):
                raise BrokerUnavailable(f"cannot connect to {s.host}:{s.port}: {exc}") from None
            raise BrokerUnavailable(
                f"{s.host}:{s.port} did not complete the TWS API handshake ({exc!r}); is this "
                "the API port of TWS / IB Gateway, and is the client id free?"
            ) from None
        finally:
            client.apiError -= on_api_error
            client.conn.disconnected -= on_socket_closed
            if not attempt.done():
                attempt.cancel()
        self.client_id = client_id

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
        self._streams.clear()
        self._tickers.clear()
        self._mkt_req.clear()
        self._trades.clear()
        self._ref_by_id.clear()
        if self._time_future is not None and not self._time_future.done():
            self._time_future.set_exception(ConnectionError("disconnected"))
        self._time_future = None
        if not self._closing:
            self.listener.on_disconnected()

    def _on_error(self, req_id: int, code: int, text: str, contract: Any) -> None:
        if not self.ib.isConnected():  # still connecting: 326 tells why the socket closes
            self._connect_errors.append((code, text))
        if code == CONNECTIVITY_LOST:
            self.listener.on_connectivity_lost()
            return
        if code in (RESTORED, RESTORED_DATA_LOST):
            self.listener.on_connectivity_restored(data_lost=code == RESTORED_DATA_LOST)
            return
        sym = self._mkt_req.get(req_id)
        if sym is not None and code in MARKET_DATA_PROBLEMS:
            self._md_problem[sym] = f"{code} {MARKET_DATA_PROBLEMS[code]}"
            return
        ref = self._ref_by_id.get(req_id)
        if ref is None or code in INFO_CODES:
            return
        if code in ORDER_NOTE_CODES:
            self.listener.on_order_note(ref, f"ib_{code}", text)
        else:
            self.listener.on_order_rejected(ref, f"error {code}: {text}")

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
        self, symbols: Sequence[str], wait_seconds: float, keep: bool = False
    ) -> dict[str, str]:
        """Which symbols have no live market data (354, 10167, 10168, delayed type, nothing).

        Checked MARKET_DATA_BATCH symbols at a time (IB allows about 100 market-data lines);
        with `keep` the lines stay open for quotes (marketable limits), so at most that many.
        """
        self.ib.reqMarketDataType(1)
        self._md_problem.clear()
        out: dict[str, str] = {}
        batch = len(symbols) if keep else MARKET_DATA_BATCH
        for i in range(0, len(symbols), max(batch, 1)):
            out.update(await self._check_batch(symbols[i : i + batch], wait_seconds, keep))
        return out

    async def _check_batch(
        self, symbols: Sequence[str], wait_seconds: float, keep: bool
    ) -> dict[str, str]:
        for sym in symbols:
            t = self.ib.reqMktData(self.contracts[sym], "", False, False)
            self._tickers[sym] = t
            req = self._ticker_req(t)
            if req is not None:
                self._mkt_req[req] = sym
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if all(s in self._md_problem or self._has_data(self._tickers[s]) for s in symbols):
                break
            await asyncio.sleep(0.02)
        out: dict[str, str] = {}
        for sym in symbols:
            t = self._tickers[sym]
            if sym in self._md_problem:
                out[sym] = self._md_problem[sym]
            elif not self._has_data(t):
                out[sym] = f"no market data within {wait_seconds:g} s"
            elif t.marketDataType != 1:
                out[sym] = f"market data type {t.marketDataType} (delayed or frozen), not live"
        if not keep:
            for sym in symbols:
                with contextlib.suppress(Exception):
                    self.ib.cancelMktData(self.contracts[sym])
                self._tickers.pop(sym, None)
            self._mkt_req = {r: s for r, s in self._mkt_req.items() if s not in set(symbols)}
        return out

    def _ticker_req(self, t: Ticker) -> int | None:
        for req, ticker in self.ib.wrapper.reqId2Ticker.items():
            if ticker is t:
                return int(req)
        return None

    @staticmethod
    def _has_data(t: Ticker) -> bool:
        return any(
            isinstance(x, float) and not math.isnan(x) and x > 0
            for x in (t.last, t.close, t.bid, t.ask)
        )

    def quote(self, symbol: str) -> tuple[float, float]:
        """(bid, ask) from the market data line kept open for marketable limits; NaN if none."""
        t = self._tickers.get(symbol)
        if t is None:
            return math.nan, math.nan
        bid = t.bid if isinstance(t.bid, float) and t.bid > 0 else math.nan
        ask = t.ask if isinstance(t.ask, float) and t.ask > 0 else math.nan
        return bid, ask

    # ------------------------------------------------------------------ bars

    async def subscribe_bars(self, symbol: str, duration: str, on_bar: OnBar) -> BarArrays:
        """Regular-session 1-minute TRADES bars over `duration`, then kept up to date: every
        later bar goes to `on_bar(symbol, bar)`. Paced; pacing violations back off and retry;
        any other error or an empty answer raises."""
        contract = self.contracts[symbol]
        retries = 0
        backoff = self.settings.pacing_backoff_seconds
        while True:
            await self._pacer.wait()
            self.history_requests += 1
            try:
                bars = await self.ib.reqHistoricalDataAsync(
                    contract,
                    endDateTime="",
                    durationStr=duration,
                    barSizeSetting="1 min",
                    whatToShow="TRADES",
                    useRTH=True,
                    formatDate=2,
                    keepUpToDate=True,
                    timeout=self.settings.request_timeout,
                )
            except RequestError as exc:
                text = str(exc.message)
                if (
                    exc.code == 162
                    and "pacing" in text.lower()
                    and retries < self.settings.max_history_retries
                ):
                    self.pacing_violations += 1
                    retries += 1
                    log.warning(
                        "history pacing violation for %s; waiting %.1f s (retry %d)",
                        symbol, backoff, retries,
                    )  # fmt: skip
                    self._pacer.hold(backoff)
                    backoff = min(backoff * 2, 60.0)
                    continue
                if exc.code == 162 and "no data" in text.lower():
                    raise DataError(
                        f"{symbol}: the broker has no 1-minute bars for it over {duration} "
                        "(HMDS query returned no data); remove it from `symbols`"
                    ) from None
                raise BrokerUnavailable(
                    f"{symbol}: historical data request failed: error {exc.code} {text}"
                ) from None
            if not bars:
                raise BrokerUnavailable(
                    f"{symbol}: historical data request returned nothing within "
                    f"{self.settings.request_timeout:g} s (timeout); not trading on missing history"
                )
            old = self._streams.get(symbol)
            if old is not None:
                with contextlib.suppress(Exception):
                    self.ib.cancelHistoricalData(old)
            self._streams[symbol] = bars

            def handler(b: BarDataList, has_new: bool, sym: str = symbol) -> None:
                if self._streams.get(sym) is not b:
                    return
                if has_new and len(b) >= 2:
                    on_bar(sym, _stream_bar(b[-2]))
                if b:
                    on_bar(sym, _stream_bar(b[-1]))

            bars.updateEvent += handler
            return self._arrays(bars)

    @staticmethod
    def _arrays(bars: Sequence[Any]) -> BarArrays:
        n = len(bars)
        ts = np.fromiter((_ns(b.date) for b in bars), np.int64, n)
        return BarArrays(
            ts=ts,
            open=np.fromiter((b.open for b in bars), np.float64, n),
            high=np.fromiter((b.high for b in bars), np.float64, n),
            low=np.fromiter((b.low for b in bars), np.float64, n),
            close=np.fromiter((b.close for b in bars), np.float64, n),
            volume=np.fromiter((float(b.volume) for b in bars), np.float64, n),
        )

    def cancel_streams(self) -> None:
        for bars in list(self._streams.values()):
            with contextlib.suppress(Exception):
                self.ib.cancelHistoricalData(bars)
        self._streams.clear()

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
            fut.set_result(_ns(t))

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

    def modify_to_market(self, order_ref: str) -> bool:
        trade = self._trade(order_ref)
        if trade is None or trade.isDone():
            return False
        trade.order.orderType = "MKT"
        trade.order.lmtPrice = UNSET_DOUBLE
        self.ib.placeOrder(trade.contract, trade.order)
        return True

    def cancel(self, order_ref: str) -> bool:
        """Cancel one of our orders; False if this connection does not know it as working."""
        trade = self._trade(order_ref)
        if trade is None or trade.isDone():
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

    def _exec_report(self, fill: IbFill, trade: Trade | None) -> ExecReport:
        ex = fill.execution
        ref = ex.orderRef or (trade.order.orderRef if trade is not None else "")
        cr = fill.commissionReport
        commission = _micro(cr.commission) if cr is not None and cr.execId else None
        return ExecReport(
            exec_id=ex.execId,
            order_ref=ref,
            perm_id=int(ex.permId),
            ib_order_id=int(ex.orderId),
            client_id=int(ex.clientId),
            account=ex.acctNumber,
            symbol=fill.contract.symbol,
            side=_side(ex.side),
            quantity=int(round(float(ex.shares))),
            price=float(ex.price),
            time_ns=int(ex.time.timestamp() * NS) if ex.time else 0,
            commission_micro=commission,
        )

    def _on_exec(self, trade: Trade, fill: IbFill) -> None:
        self.listener.on_execution(self._exec_report(fill, trade))

    def _on_commission(self, trade: Trade, fill: IbFill, report: Any) -> None:
        self.listener.on_commission(report.execId, _micro(report.commission))

    @staticmethod
    def _order_report(trade: Trade) -> OrderReport:
        o, s = trade.order, trade.orderStatus
        status = ORDER_DONE.get(s.status, "working")
        why = ""
        if trade.log:
            why = trade.log[-1].message or ""
        return OrderReport(
            order_ref=o.orderRef or "",
            perm_id=int(o.permId or s.permId or 0),
            ib_order_id=int(o.orderId),
            client_id=int(o.clientId),
            symbol=trade.contract.symbol,
            side=_side(o.action),
            quantity=int(round(float(o.totalQuantity))),
            filled=int(round(float(s.filled))),
            status=status,
            ib_status=s.status,
            why=why,
        )

    def _on_status(self, trade: Trade) -> None:
        if trade.order.orderRef:
            self._ref_by_id.setdefault(trade.order.orderId, trade.order.orderRef)
            self.listener.on_order_status(self._order_report(trade))

    def executions(self) -> list[ExecReport]:
        """Every execution this connection has seen (live and from the startup sync)."""
        return [self._exec_report(f, None) for f in self.ib.fills()]

    # -------------------------------------------------------------- snapshot

    async def snapshot(self) -> BrokerSnapshot:
        """Open orders (all clients), completed orders, executions, positions and cash."""
        ib = self.ib
        to = self.settings.request_timeout
        account = self.account or (ib.managedAccounts() or [""])[0]
        open_trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), to)
        completed = await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), to)
        fills = await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter()), to)
        positions = await asyncio.wait_for(ib.reqPositionsAsync(), to)
        summary = await asyncio.wait_for(ib.accountSummaryAsync(account), to)
        cash = next(
            (
                _micro(float(v.value))
                for v in summary
                if v.tag == "TotalCashValue" and v.account == account and v.currency in ("USD", "")
            ),
            None,
        )
        known = {f.execution.execId: f for f in ib.fills()}
        execs = []
        for f in fills:
            better = known.get(f.execution.execId, f)
            execs.append(self._exec_report(better, None))
        pos: dict[str, int] = {}
        for p in positions:
            if p.account == account and p.contract.secType in ("STK", ""):
                q = int(round(float(p.position)))
                if q:
                    pos[p.contract.symbol] = q
        return BrokerSnapshot(
            account=account,
            open_orders=[self._order_report(t) for t in open_trades if not t.isDone()],
            completed_orders=[self._order_report(t) for t in completed],
            executions=execs,
            positions=pos,
            cash_micro=cash,
        )

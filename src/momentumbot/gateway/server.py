"""The simulated TWS gateway: an asyncio TCP server speaking the TWS API (server version 178) over
bars replayed on a virtual market clock, with the shared fill model and injectable faults."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from momentumbot.config.schema import ExecutionConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.source import BarReader
from momentumbot.domain.units import MICRO, usd_to_micro
from momentumbot.execution.costs import BUY, SELL, cost_params, estimate_commission
from momentumbot.gateway import protocol as p
from momentumbot.gateway.broker import (
    Bar,
    Event,
    Execution,
    Fill,
    OrderRejected,
    OrderRequest,
    SimBroker,
    SimOrder,
    StatusChange,
    warm_up_fill_model,
)
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import (
    DAILY,
    NS,
    NS_PER_MINUTE,
    NY,
    AggBars,
    MarketData,
    TickState,
    aggregate,
    bar_row,
    bar_rows,
    bucket_bounds,
    duration_start,
    five_second_bars,
    format_bar_date,
    format_exec_time,
    ny_time,
    parse_bar_size,
    parse_end_datetime,
    ticks_for_bar,
)
from momentumbot.gateway.protocol import (
    ContractSpec,
    ProtocolError,
    Reader,
    RequestError,
    StockInfo,
)
from momentumbot.gateway.record import Recorder, micro_str

log = logging.getLogger("momentumbot.gateway")

WRITE_HIGH_WATER = 1 << 20
SLOW_CLIENT_SECONDS = 10.0
EVENTS_PER_YIELD = 32
SUMMARY_TAGS = (
    "AccountType",
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "BuyingPower",
    "EquityWithLoanValue",
    "GrossPositionValue",
    "AvailableFunds",
    "ExcessLiquidity",
    "RealizedPnL",
    "UnrealizedPnL",
)


@dataclass
class GatewayConfig:
    """How a gateway runs; the CLI builds one from its options."""

    start: str | dt.date = "2024-01-02"
    speed: float = 1.0
    step_mode: bool = False
    host: str = "127.0.0.1"
    port: int = 7497
    accounts: tuple[str, ...] = ("DU0000001",)
    cash: Decimal = Decimal(100_000)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    calendar: str = "XNYS"
    warmup_days: int = 45
    first_order_id: int = 1
    cap_exempt_ref_prefix: str = "flatten"
    record_path: str | None = None
    faults: Faults = field(default_factory=Faults)


# ---- the virtual clock


class VirtualClock:
    """Market time: `speed` market seconds per real second, or only explicit steps when paused."""

    def __init__(self, start_ns: int, speed: float, paused: bool) -> None:
        self.speed = speed
        self.paused = paused
        self._anchor_v = start_ns
        self._anchor_r = time.monotonic()

    def now_ns(self) -> int:
        if self.paused:
            return self._anchor_v
        return self._anchor_v + int((time.monotonic() - self._anchor_r) * self.speed * NS)

    def _reanchor(self) -> None:
        self._anchor_v = self.now_ns()
        self._anchor_r = time.monotonic()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._reanchor()
        self.speed = speed

    def pause(self) -> None:
        self._reanchor()
        self.paused = True

    def resume(self) -> None:
        self._anchor_r = time.monotonic()
        self.paused = False

    def start_at(self, ns: int) -> None:
        """Show `ns` now: a running clock starts here (time spent before does not count)."""
        self._anchor_v = ns
        self._anchor_r = time.monotonic()

    def jump_to(self, ns: int) -> None:
        if ns > self.now_ns():
            self._anchor_v = ns
            self._anchor_r = time.monotonic()

    def anchor(self) -> dict[str, float | int | bool]:
        """The clock's state: market time `virtual_ns` was shown at `monotonic` (time.monotonic,
        comparable across processes on one machine); it moves at `speed` unless paused."""
        return {
            "virtual_ns": self._anchor_v,
            "monotonic": self._anchor_r,
            "speed": self.speed,
            "paused": self.paused,
        }

    def real_time_of(self, ns: int) -> float:
        """When (time.monotonic) the clock shows `ns`, if it runs."""
        return self._anchor_r + (ns - self._anchor_v) / NS / self.speed


BAR_CLOSE, SESSION_CLOSE, SESSION_OPEN = 0, 1, 2


class Timeline:
    """Session opens, bar closes and session closes from the first session on, in time order."""

    def __init__(
        self, calendar: TradingCalendar, first_session: pd.Timestamp, start_ns: int
    ) -> None:
        self.calendar = calendar
        self._next_session = first_session
        self.t = np.empty(0, dtype=np.int64)
        self.kind = np.empty(0, dtype=np.int8)
        self.ref = np.empty(0, dtype=np.int64)
        self.i = 0
        self.open_ns: dict[int, int] = {}  # session close -> open
        self._extend()
        self.i = int(np.searchsorted(self.t, start_ns, side="right"))

    def _extend(self) -> None:
        sessions = self.calendar.sessions(
            self._next_session, self._next_session + pd.Timedelta(days=120)
        )
        if len(sessions) == 0:
            return
        self._next_session = sessions[-1] + pd.Timedelta(days=1)
        g = self.calendar.grid(sessions)
        t = np.concatenate([g.label_ns + NS_PER_MINUTE, g.close_ns, g.open_ns])
        kind = np.concatenate(
            [
                np.full(g.label_ns.size, BAR_CLOSE, np.int8),
                np.full(g.close_ns.size, SESSION_CLOSE, np.int8),
                np.full(g.open_ns.size, SESSION_OPEN, np.int8),
            ]
        )
        ref = np.concatenate([g.label_ns, g.open_ns, g.open_ns])
        order = np.lexsort((kind, t))
        keep = self.t[self.i :]
        self.t = np.concatenate([keep, t[order]])
        self.kind = np.concatenate([self.kind[self.i :], kind[order]])
        self.ref = np.concatenate([self.ref[self.i :], ref[order]])
        self.i = 0
        for o, c in zip(g.open_ns, g.close_ns, strict=True):
            self.open_ns[int(c)] = int(o)

    def next_time(self) -> int:
        if self.i >= self.t.size:
            self._extend()
            if self.i >= self.t.size:
                return 2**62
        return int(self.t[self.i])

    def pop(self) -> tuple[int, int, int]:
        k = self.i
        self.i += 1
        return int(self.t[k]), int(self.kind[k]), int(self.ref[k])


# ---- subscriptions


@dataclass
class HistSub:
    session: ClientSession
    req_id: int
    stock: StockInfo
    minutes: int
    use_rth: bool
    format_date: int
    last_start: int
    bucket: tuple[int, int] = (0, 0)


@dataclass
class RtSub:
    session: ClientSession
    req_id: int
    stock: StockInfo


@dataclass
class MktSub:
    session: ClientSession
    req_id: int
    stock: StockInfo
    ticks: TickState = field(default_factory=TickState)


Sub = HistSub | RtSub | MktSub


# ---- one client connection


class ClientSession(asyncio.Protocol):
    """One API client: framing, the handshake, and requests handed to the server."""

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = p.FrameReader()
        self.server_version = 0
        self.client_id = -1
        self.ready = False
        self.closed = False
        self.peer = "?"
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.held: list[bytes] = []  # order messages held back during an outage
        self.subs: dict[int, Sub] = {}
        self.positions_subscribed = False
        self.account_updates: str | None = None
        self.account_multi: dict[int, str] = {}
        self.account_summary: dict[int, tuple[str, ...]] = {}
        self.messages_sent = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server._connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        self.server._disconnected(self)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            messages = self.reader.feed(data)
        except ProtocolError as exc:
            log.warning("client %s (%s): %s; closing", self.client_id, self.peer, exc)
            self.abort()
            return
        for fields in messages:
            if self.closed:
                return
            try:
                self._handle(fields)
            except ProtocolError as exc:
                log.warning("client %s (%s): %s; closing", self.client_id, self.peer, exc)
                self.abort()
                return
        self.flush()

    def _handle(self, fields: list[str]) -> None:
        if not self.server_version:
            self.server_version = p.negotiate(fields[0])
            self.send(p.msg_server_hello(self.server.connection_time()))
            log.debug("client %s: handshake, server version %d", self.peer, self.server_version)
            return
        if not self.ready:
            if fields[0] != "71":
                raise ProtocolError(f"expected startApi (71), got message {fields[0]!r}")
            r = Reader(fields)
            try:
                r.integer()
                client_id = r.integer()
            except RequestError as exc:
                raise ProtocolError(str(exc)) from None
            self.server._start_api(self, client_id)
            return
        self.server._request(self, fields)

    # output
    def send(self, msg: bytes) -> None:
        if self.closed:
            return
        self._out.append(msg)
        self.messages_sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def send_many(self, msgs: Iterable[bytes]) -> None:
        for m in msgs:
            self.send(m)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def send_later(self, delay: float, msgs: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._send_now, msgs)

    def _send_now(self, msgs: list[bytes]) -> None:
        if not self.closed:
            self.send_many(msgs)
            self.flush()

    def error(self, req_id: int, code: int, text: str, advanced: str = "") -> None:
        log.info("client %s: error %d reqId %d: %s", self.client_id, code, req_id, text)
        self.send(p.msg_error(req_id, code, text, advanced))

    def close_after_flush(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    @property
    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


# ---- the server


class GatewayServer:
    """The gateway. Start it with `await start()`; tests drive the clock with `advance*`."""

    def __init__(self, source: BarReader, config: GatewayConfig | None = None) -> None:
        self.cfg = cfg = config or GatewayConfig()
        self.calendar = TradingCalendar(cfg.calendar)
        sessions = self.calendar.sessions(
            cfg.start, pd.Timestamp(cfg.start) + pd.Timedelta(days=14)
        )
        if len(sessions) == 0:
            raise ValueError(f"no trading session on or after {cfg.start}")
        first = sessions[0]
        self.start_ns = ny_ns(first, 9, 0)
        self.market = MarketData(
            source, self.calendar, self.start_ns - cfg.warmup_days * 86_400 * NS
        )
        self.faults = cfg.faults
        self.broker = SimBroker(
            cfg.accounts, cfg.cash, cost_params(cfg.execution), cfg.cap_exempt_ref_prefix
        )
        self.record = Recorder(cfg.record_path)
        self.clock = VirtualClock(self.start_ns, cfg.speed, paused=cfg.step_mode)
        self.timeline = Timeline(self.calendar, first, self.start_ns)
        self._now_ns = self.start_ns
        self.session_open = False
        self.sessions: set[ClientSession] = set()
        self._clients: dict[int, ClientSession] = {}
        self._held_ids: dict[int, float] = {}
        self._next_valid_id = cfg.first_order_id
        self._subs_by_symbol: dict[str, list[Sub]] = {}
        self._agg_subs: list[HistSub] = []
        self._server: asyncio.Server | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._bound_port = 0
        self._reopen_task: asyncio.Task[None] | None = None
        self._closing = False
        self.outage = False
        self._outage_drop = False
        self._hist_times: deque[float] = deque()
        self._scheduled: list[tuple[int, int, str, float]] = []
        self._scheduled_day: dt.date | None = None
        self._seq = 0
        self._outage_data_lost = False
        self._opens_cache: dict[dt.date, np.ndarray] = {}
        self.bar_close_listeners: list[Callable[[int], None]] = []
        self.stats = {"bar_closes": 0, "requests": 0, "connections": 0}

    # ---- lifecycle

    async def start(self) -> None:
        # the fill model is compiled (or loaded from the cache) before the clock starts, and a
        # running clock starts when the gateway does, not when it was constructed
        warm_up_fill_model(self.broker.params)
        await self._listen(self.cfg.port)
        self.clock.start_at(self._now_ns)
        self._run_task = asyncio.create_task(self._run(), name="gateway-clock")
        log.info(
            "gateway listening on %s:%d; market time %s, %s; accounts %s",
            self.cfg.host,
            self.port,
            ny_time(self._now_ns).isoformat(),
            "step mode" if self.cfg.step_mode else f"speed x{self.clock.speed:g}",
            ",".join(self.cfg.accounts),
        )

    @property
    def port(self) -> int:
        """The API port (also while it is closed by a simulated restart)."""
        return self._bound_port

    async def stop(self) -> None:
        # The clock task ends on the flag; cancelling alone is not enough on Python 3.11,
        # whose wait_for can swallow a cancellation that races with the awaited event.
        self._closing = True
        self._wake.set()
        if self._reopen_task is not None:
            self._reopen_task.cancel()
            self._reopen_task = None
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.wait({self._run_task}, timeout=5)
            self._run_task = None
        for s in list(self.sessions):
            s.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)
        self.record.close()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- time

    def now_ns(self) -> int:
        return self._now_ns

    def connection_time(self) -> str:
        t = ny_time(self._now_ns)
        return t.strftime("%Y%m%d %H:%M:%S ") + (t.tzname() or "EST")

    async def advance(self, seconds: float) -> None:
        """Move the market clock forward and process everything that happens on the way."""
        await self.advance_to(self._now_ns + int(seconds * NS))

    async def advance_minutes(self, minutes: int) -> None:
        await self.advance_to(self._now_ns + minutes * NS_PER_MINUTE)

    async def advance_to(self, ns: int) -> None:
        self.clock.jump_to(ns)
        await self._process_until(ns)

    async def advance_to_time(self, hhmm: str, day: str | None = None) -> None:
        """Advance to a New York wall time on `day` (default: the current market day)."""
        d = pd.Timestamp(day) if day else pd.Timestamp(ny_time(self._now_ns).date())
        h, _, m = hhmm.partition(":")
        await self.advance_to(ny_ns(d, int(h), int(m)))

    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed)
        self._wake.set()

    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every client's output has left the gateway."""
        for s in list(self.sessions):
            s.flush()
        for _ in range(200):
            if all(s.buffered == 0 for s in self.sessions):
                return
            await asyncio.sleep(0.005)

    async def _run(self) -> None:
        while not self._closing:
            target = self.clock.now_ns()
            if target > self._now_ns:
                await self._process_until(target)
            if self.clock.paused:
                delay = 3600.0
            else:
                nxt = min(self.timeline.next_time(), self._next_scheduled())
                delay = (nxt - self.clock.now_ns()) / NS / self.clock.speed
                delay = min(max(delay, 0.0), 0.05)
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            else:
                await asyncio.sleep(0)

    async def _process_until(self, target: int) -> None:
        async with self._lock:
            n = 0
            while not self._closing:
                t_ev = self.timeline.next_time()
                t_sched = self._next_scheduled()
                t = min(t_ev, t_sched)
                # a clock paused during a catch-up stops it where the clock stopped
                if t > target or (self.clock.paused and t > self.clock.now_ns()):
                    break
                self._now_ns = max(self._now_ns, t)
                if t_sched <= t_ev:
                    self._run_scheduled()
                else:
                    t, kind, ref = self.timeline.pop()
                    self._on_event(t, kind, ref)
                n += 1
                if n % EVENTS_PER_YIELD == 0:
                    await self._yield_to_clients()
            self._now_ns = max(self._now_ns, min(target, self.clock.now_ns()))
            for s in list(self.sessions):
                s.flush()

    async def _yield_to_clients(self) -> None:
        for s in list(self.sessions):
            s.flush()
        await asyncio.sleep(0)
        for s in list(self.sessions):
            if s.writable.is_set():
                continue
            try:
                await asyncio.wait_for(s.writable.wait(), SLOW_CLIENT_SECONDS)
            except TimeoutError:
                log.warning("client %s reads too slowly; dropping it", s.client_id)
                s.abort()

    def _on_event(self, t: int, kind: int, ref: int) -> None:
        if kind == SESSION_OPEN:
            self.session_open = True
            log.info("session open %s", ny_time(t).date())
            self._deliver(self.broker.on_session_open())
        elif kind == SESSION_CLOSE:
            self._deliver(self.broker.on_session_close(t))
            self.session_open = False
            log.info("session close %s", ny_time(t).isoformat())
        else:
            self._on_bar_close(ref)

    # ---- scheduled faults (by New York wall time)

    def _next_scheduled(self) -> int:
        f = self.faults
        if not (f.outages or f.nightly_resets or f.restarts):
            return 2**62
        day = ny_time(self._now_ns).date()
        if self._scheduled_day != day:
            self._scheduled_day = day
            base = ny_ns(pd.Timestamp(day), 0, 0)
            for minute, secs in f.outages:
                t = base + minute * NS_PER_MINUTE
                if t > self._now_ns:
                    self._push_scheduled(t, "outage", secs)
                    self._push_scheduled(t + int(secs * NS), "restore", 0.0)
            for minute, secs in f.nightly_resets:
                t = base + minute * NS_PER_MINUTE
                if t > self._now_ns:
                    self._push_scheduled(t, "nightly-reset", secs)
            for minute, secs in f.restarts:
                t = base + minute * NS_PER_MINUTE
                if t > self._now_ns:
                    self._push_scheduled(t, "restart", secs)
            # come back tomorrow to schedule the next day
            self._push_scheduled(base + 86_400 * NS + NS, "noop", 0.0)
        return self._scheduled[0][0] if self._scheduled else 2**62

    def _push_scheduled(self, t: int, what: str, arg: float) -> None:
        self._seq += 1
        heapq.heappush(self._scheduled, (t, self._seq, what, arg))

    def _run_scheduled(self) -> None:
        _, _, what, arg = heapq.heappop(self._scheduled)
        if what == "outage":
            self.lose_connectivity()
        elif what == "restore":
            self.restore_connectivity()
        elif what == "nightly-reset":
            self.nightly_reset(down_seconds=self._real_seconds(arg))
        elif what == "restart":
            self.restart(down_seconds=self._real_seconds(arg))

    def _real_seconds(self, replay_seconds: float) -> float:
        """Replay seconds in real seconds at the clock's speed (step mode: one for one)."""
        running = not self.clock.paused and self.clock.speed > 0
        return replay_seconds / self.clock.speed if running else replay_seconds

    # ---- connections

    def _connected(self, s: ClientSession) -> None:
        self.stats["connections"] += 1
        self.sessions.add(s)
        log.info("connection from %s", s.peer)

    def _disconnected(self, s: ClientSession) -> None:
        self.sessions.discard(s)
        for sub in list(s.subs.values()):
            self._drop_sub(sub)
        s.subs.clear()
        if s.ready and self._clients.get(s.client_id) is s:
            del self._clients[s.client_id]
            if self.faults.hold_client_id_seconds > 0:
                self._held_ids[s.client_id] = time.monotonic() + self.faults.hold_client_id_seconds
        log.info("client %s (%s) disconnected", s.client_id, s.peer)

    def _client_id_taken(self, client_id: int) -> bool:
        if client_id in self._clients or client_id in self.faults.reserved_client_ids:
            return True
        until = self._held_ids.get(client_id)
        if until is not None:
            if time.monotonic() < until:
                return True
            del self._held_ids[client_id]
        return False

    def _start_api(self, s: ClientSession, client_id: int) -> None:
        if self._client_id_taken(client_id):
            log.info("client id %d is in use; refusing %s", client_id, s.peer)
            s.error(
                -1,
                326,
                "Unable to connect as the client id is already in use. Retry with a unique client id.",
            )
            s.close_after_flush()
            return
        s.client_id = client_id
        s.ready = True
        self._clients[client_id] = s
        s.send(p.msg_next_valid_id(self._next_valid_id))
        s.send(p.msg_managed_accounts(self.cfg.accounts))
        if self.outage:
            s.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
        else:
            s.error(-1, 2104, "Market data farm connection is OK:usfarm")
            s.error(-1, 2106, "HMDS data farm connection is OK:ushmds")
            s.error(-1, 2158, "Sec-def data farm connection is OK:secdefnj")
        log.info("client %d ready (%s)", client_id, s.peer)

    # ---- requests

    def _request(self, s: ClientSession, fields: list[str]) -> None:
        self.stats["requests"] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("client %d >>> %s", s.client_id, ",".join(fields))
        try:
            msg_id = int(fields[0])
        except ValueError:
            s.error(-1, 320, f"Error reading request: message id {fields[0]!r} is not a number")
            return
        handler = self._handlers.get(msg_id)
        if handler is None:
            s.error(
                -1, 320, f"Error reading request: message id {msg_id} is not served by this gateway"
            )
            return
        r = Reader(fields)
        try:
            handler(self, s, r)
        except RequestError as exc:
            s.error(-1, 320, f"Error reading request: {exc}")
        except ValueError as exc:
            s.error(-1, 321, f"Error validating request: {exc}")

    def _resolve(self, c: ContractSpec) -> StockInfo | None:
        if c.sec_type.upper() not in ("", "STK"):
            return None
        if c.currency.upper() not in ("", "USD"):
            return None
        stock: StockInfo | None = None
        if c.con_id:
            stock = self.market.by_con_id.get(c.con_id)
            if stock is None or (c.symbol and c.symbol.upper() != stock.symbol):
                return None
        else:
            sym = (c.symbol or c.local_symbol).upper()
            stock = self.market.stocks.get(sym)
        if stock is None or stock.symbol in self.faults.unknown_symbols:
            return None
        return stock

    def _no_security(self, s: ClientSession, req_id: int) -> None:
        s.error(req_id, 200, "No security definition has been found for the request")

    def _req_ids(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_next_valid_id(self._next_valid_id))

    def _req_current_time(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_current_time(self._now_ns // NS))

    def _req_managed_accounts(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_managed_accounts(self.cfg.accounts))

    def _req_contract_details(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        stock = self._resolve(c)
        if stock is None:
            self._no_security(s, req_id)
            return
        trading, liquid = self._hours()
        s.send(p.msg_contract_data(req_id, stock, f"{stock.symbol} (SIMULATED)", trading, liquid))
        s.send(p.msg_contract_data_end(req_id))

    def _hours(self) -> tuple[str, str]:
        day = pd.Timestamp(ny_time(self._now_ns).date())
        sessions = self.calendar.sessions(day, day + pd.Timedelta(days=6))
        g = self.calendar.grid(sessions)
        opens = {
            ny_time(int(o)).date(): (int(o), int(c))
            for o, c in zip(g.open_ns, g.close_ns, strict=True)
        }
        trading: list[str] = []
        liquid: list[str] = []
        for k in range(7):
            d = (day + pd.Timedelta(days=k)).date()
            ymd = d.strftime("%Y%m%d")
            if d not in opens:
                trading.append(f"{ymd}:CLOSED")
                liquid.append(f"{ymd}:CLOSED")
                continue
            o, c = opens[d]
            trading.append(f"{ymd}:0400-{ymd}:2000")
            liquid.append(f"{ymd}:{ny_time(o):%H%M}-{ymd}:{ny_time(c):%H%M}")
        return ";".join(trading), ";".join(liquid)

    def _pacing_violation(self) -> bool:
        rule = self.faults.pacing
        if rule is None:
            return False
        n, window = rule
        now = time.monotonic()
        while self._hist_times and now - self._hist_times[0] > window:
            self._hist_times.popleft()
        if len(self._hist_times) >= n:
            return True
        self._hist_times.append(now)
        return False

    def _req_historical_data(self, s: ClientSession, r: Reader) -> None:
        req_id = r.integer()
        c = r.contract()
        r.flag()  # includeExpired
        end_text = r.text()
        bar_size = r.text()
        duration = r.text()
        use_rth = r.flag()
        what = r.text().upper()
        format_date = r.integer(1)
        if c.sec_type.upper() == "BAG":
            r.skip(4 * r.integer())
        keep_up = r.flag()
        r.text()  # chartOptions
        stock = self._resolve(c)
        if stock is None:
            self._no_security(s, req_id)
            return
        if self._pacing_violation():
            s.error(
                req_id,
                162,
                "Historical Market Data Service error message:Historical data request pacing violation",
            )
            return
        if what == "SCHEDULE":
            self._send_schedule(s, req_id, end_text, duration, use_rth)
            return
        if what not in ("TRADES", "MIDPOINT", "ADJUSTED_LAST"):
            s.error(
                req_id,
                162,
                f"Historical Market Data Service error message:No data of type {what} is available",
            )
            return
        if keep_up and end_text.strip():
            s.error(
                req_id,
                321,
                "Error validating request.-'bP' : cause - End date not supported with live updates",
            )
            return
        try:
            minutes = parse_bar_size(bar_size)
            end_ns = min(parse_end_datetime(end_text, self._now_ns), self._now_ns)
            start_ns = duration_start(duration, end_ns, self.calendar, use_rth)
        except ValueError as exc:
            s.error(req_id, 162, f"Historical Market Data Service error message:{exc}")
            return
        agg = self._closed_bars(stock.symbol, start_ns, end_ns, minutes, use_rth)
        daily = minutes >= DAILY
        if len(agg) == 0:
            s.error(
                req_id,
                162,
                f"Historical Market Data Service error message:HMDS query returned no data: {stock.symbol}@SMART Trades",
            )
            return
        if what == "MIDPOINT":
            agg = _midpoint(agg)
        rows = bar_rows(agg, format_date, daily)
        s.send(
            p.msg_historical_data(
                req_id,
                format_bar_date(start_ns, 1, False),
                format_bar_date(end_ns, 1, False),
                rows,
            )
        )
        log.info(
            "client %d: history %s %s %s -> %d bars",
            s.client_id,
            stock.symbol,
            duration,
            bar_size,
            len(rows),
        )
        if keep_up:
            sub = HistSub(s, req_id, stock, minutes, use_rth, format_date, int(agg.start[-1]))
            self._add_sub(s, sub)

    def _closed_bars(
        self, symbol: str, start_ns: int, end_ns: int, minutes: int, use_rth: bool
    ) -> AggBars:
        """Bars of `minutes` starting in [start, end) that have closed by now."""
        bars = self.market.history(symbol, start_ns, self._now_ns)
        if use_rth and len(bars):
            bars = bars.mask(self.calendar.session_of(bars.ts) >= 0)
        agg = aggregate(bars, minutes, self.calendar, use_rth)
        keep = (agg.start < end_ns) & (agg.end <= self._now_ns)
        return agg if keep.all() else agg.select(keep)

    def _send_schedule(
        self, s: ClientSession, req_id: int, end_text: str, duration: str, use_rth: bool
    ) -> None:
        try:
            end_ns = parse_end_datetime(end_text, self._now_ns)
            start_ns = duration_start(duration, end_ns, self.calendar, True)
        except ValueError as exc:
            s.error(req_id, 162, f"Historical Market Data Service error message:{exc}")
            return
        start_day = ny_time(start_ns).date()
        end_day = ny_time(end_ns).date()
        sessions = self.calendar.sessions(start_day, end_day)
        g = self.calendar.grid(sessions)
        rows = [
            (
                ny_time(int(o)).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(int(c)).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(int(o)).strftime("%Y%m%d"),
            )
            for o, c in zip(g.open_ns, g.close_ns, strict=True)
        ]
        s.send(
            p.msg_historical_schedule(
                req_id,
                ny_time(start_ns).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(end_ns).strftime("%Y%m%d-%H:%M:%S"),
                "US/Eastern",
                rows,
            )
        )

    def _cancel_sub(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        sub = s.subs.pop(req_id, None)
        if sub is not None:
            self._drop_sub(sub)

    def _req_head_timestamp(self, s: ClientSession, r: Reader) -> None:
        req_id = r.integer()
        c = r.contract()
        stock = self._resolve(c)
        if stock is None:
            self._no_security(s, req_id)
            return
        first = self.market.history(stock.symbol, 0, self._now_ns)
        if len(first) == 0:
            s.error(
                req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data",
            )
            return
        s.send(p.msg_head_timestamp(req_id, str(int(first.ts[0]) // NS)))

    def _req_realtime_bars(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        bar_size = r.integer()
        what = r.text().upper()
        r.flag()
        stock = self._resolve(c)
        if stock is None:
            self._no_security(s, req_id)
            return
        if self.faults.no_data_for(stock.symbol):
            s.error(req_id, 354, "Requested market data is not subscribed.")
            return
        if bar_size != 5 or what not in ("TRADES", "MIDPOINT"):
            s.error(
                req_id,
                321,
                "Error validating request: real-time bars are 5 seconds of TRADES or MIDPOINT",
            )
            return
        self._add_sub(s, RtSub(s, req_id, stock))

    def _req_mkt_data(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        if c.sec_type.upper() == "BAG":
            r.skip(4 * r.integer())
        if r.flag():
            r.skip(3)
        r.text()  # genericTickList
        snapshot = r.flag()
        r.flag()  # regulatorySnapshot
        stock = self._resolve(c)
        if stock is None:
            self._no_security(s, req_id)
            return
        if self.faults.no_data_for(stock.symbol):
            s.error(
                req_id,
                354,
                "Requested market data is not subscribed.Delayed market data is not enabled.",
            )
            return
        s.send(p.msg_tick_req_params(req_id, stock.min_tick))
        s.send(p.msg_market_data_type(req_id, 1))
        sub = MktSub(s, req_id, stock)
        i = self.market.last_closed_index(stock.symbol, self._now_ns)
        if i >= 0:
            self._send_ticks(sub, i)
        if snapshot:
            s.send(p.msg_tick_snapshot_end(req_id))
            return
        self._add_sub(s, sub)

    def _ignore(self, s: ClientSession, r: Reader) -> None:
        pass

    # ---- subscriptions

    def _add_sub(self, s: ClientSession, sub: Sub) -> None:
        old = s.subs.pop(sub.req_id, None)
        if old is not None:
            self._drop_sub(old)
        s.subs[sub.req_id] = sub
        self._subs_by_symbol.setdefault(sub.stock.symbol, []).append(sub)
        if isinstance(sub, HistSub) and sub.minutes > 1:
            self._agg_subs.append(sub)

    def _drop_sub(self, sub: Sub) -> None:
        if sub in self._agg_subs:
            self._agg_subs.remove(sub)
        subs = self._subs_by_symbol.get(sub.stock.symbol)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs_by_symbol[sub.stock.symbol]

    # ---- the minute

    def _on_bar_close(self, label: int) -> None:
        self.stats["bar_closes"] += 1
        close_ns = label + NS_PER_MINUTE
        symbols = set(self._subs_by_symbol) | self.broker.working_symbols()
        bars: dict[str, tuple[int, Bar]] = {}
        for sym in symbols:
            i = self.market.bar_at(sym, label)
            if i >= 0:
                b = self.market.bars(sym)
                bars[sym] = (i, Bar(*b.row(i)))
        if self.broker.working_symbols():
            t = ny_time(label)
            events = self.broker.on_bar_close(
                label, {k: v[1] for k, v in bars.items()}, (t.year, t.month)
            )
            self._deliver(events)
        if not self.outage:
            for sym, (i, bar) in bars.items():
                for sub in self._subs_by_symbol.get(sym, ()):
                    self._publish(sub, sym, i, bar, label, close_ns)
            # aggregated subscriptions may close a bucket in a minute their symbol did not trade
            for sub in self._agg_subs:
                if sub.stock.symbol not in bars:
                    self._publish_agg(sub, label, close_ns)
        self._refresh_marks()
        for fn in self.bar_close_listeners:
            fn(label)

    def _publish(self, sub: Sub, sym: str, i: int, bar: Bar, label: int, close_ns: int) -> None:
        s = sub.session
        if isinstance(sub, HistSub):
            if sub.minutes == 1:
                if label > sub.last_start:
                    sub.last_start = label
                    row = bar_row(label, *bar, sub.format_date)
                    s.send(p.msg_historical_update(sub.req_id, row))
            else:
                self._publish_agg(sub, label, close_ns)
        elif isinstance(sub, RtSub):
            for fb in five_second_bars(label, bar.open, bar.high, bar.low, bar.close, bar.volume):
                s.send(
                    p.msg_realtime_bar(
                        sub.req_id,
                        fb.time_s,
                        fb.open,
                        fb.high,
                        fb.low,
                        fb.close,
                        fb.volume,
                        fb.wap,
                        fb.count,
                    )
                )
        else:
            self._send_ticks(sub, i)

    def _publish_agg(self, sub: HistSub, label: int, close_ns: int) -> None:
        if not (sub.bucket[0] <= label < sub.bucket[1]):
            lo, hi = bucket_bounds(
                np.array([label], np.int64), sub.minutes, self.calendar, sub.use_rth
            )
            sub.bucket = (int(lo[0]), int(hi[0]))
        start, end = sub.bucket
        if close_ns != end or start <= sub.last_start:
            return
        agg = self._closed_bars(sub.stock.symbol, start, end, sub.minutes, sub.use_rth)
        if len(agg) == 0:
            return
        sub.last_start = start
        row = bar_rows(agg, sub.format_date, sub.minutes >= DAILY)[-1]
        sub.session.send(p.msg_historical_update(sub.req_id, row))

    def _send_ticks(self, sub: MktSub, i: int) -> None:
        b = self.market.bars(sub.stock.symbol)
        label = int(b.ts[i])
        session_open = self._session_open_of(label)
        prev = self.market.last_closed_index(sub.stock.symbol, session_open)
        prev_close = float(b.close[prev]) if prev >= 0 else 0.0
        ticks = ticks_for_bar(
            sub.ticks,
            session_open,
            prev_close,
            float(b.open[i]),
            float(b.high[i]),
            float(b.low[i]),
            float(b.close[i]),
            float(b.volume[i]),
            label + NS_PER_MINUTE,
            sub.stock.min_tick,
        )
        s = sub.session
        for kind, tick_type, value, size in ticks:
            if kind == "price":
                s.send(p.msg_tick_price(sub.req_id, tick_type, value, size))
            elif kind == "size":
                s.send(p.msg_tick_size(sub.req_id, tick_type, value))
            else:
                s.send(p.msg_tick_string(sub.req_id, tick_type, str(int(value))))

    def _session_open_of(self, label: int) -> int:
        """Open (UTC ns) of the latest session that opened at or before `label`."""
        day = ny_time(label).date()
        opens = self._opens_cache.get(day)
        if opens is None:
            d = pd.Timestamp(day)
            opens = self.calendar.grid(self.calendar.sessions(d - pd.Timedelta(days=10), d)).open_ns
            self._opens_cache[day] = opens
        k = int(np.searchsorted(opens, label, side="right")) - 1
        return int(opens[k]) if k >= 0 else label

    # ---- orders

    def _req_place_order(self, s: ClientSession, r: Reader) -> None:
        order_id = r.integer()
        c = r.contract()
        r.skip(2)  # secIdType, secId
        action = r.text()
        qty = r.number(0.0) or 0.0
        order_type = r.text()
        lmt = r.number(None)
        aux = r.number(None)
        tif = r.text()
        r.text()  # ocaGroup
        account = r.text()
        r.text()  # openClose
        r.integer()  # origin
        order_ref = r.text()
        r.flag()  # transmit
        parent_id = r.integer()
        r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
        outside_rth = r.flag()
        try:
            what_if = p.read_what_if(r, c.sec_type)
        except RequestError:
            what_if = False  # a client that sends fewer fields sends no what-if
        stock = self._resolve(c)
        symbol = stock.symbol if stock else c.symbol.upper()
        now = self._now_ns
        if stock is None:
            self._no_security(s, order_id)
            self.record.reject(s.client_id, order_id, symbol, 200, "no security definition", now)
            return
        if what_if:
            self._answer_what_if(
                s, order_id, stock, action, qty, order_type, lmt, aux, tif, account
            )
            return
        try:
            if parent_id:
                raise OrderRejected(
                    201, "Order rejected - reason:attached (child) orders are not supported"
                )
            known = self.broker.perm_id_of(s.client_id, order_id) is not None
            if not known and (
                self.faults.reject_next > 0 or stock.symbol in self.faults.reject_symbols
            ):
                if self.faults.reject_next > 0:
                    self.faults.reject_next -= 1
                raise OrderRejected(
                    201,
                    "Order rejected - reason:rejected by the simulated gateway (fault injection)",
                )
            self.broker.insufficient_funds_check = self.faults.insufficient_funds
            if self.faults.insufficient_funds:
                for sym in {stock.symbol} | self.broker.working_symbols():
                    self.broker.last_close[sym] = self.mark(sym)
            req = OrderRequest(
                s.client_id, order_id, stock.symbol, action, qty, order_type, lmt, aux, tif, account,
                order_ref, outside_rth,
            )  # fmt: skip
            order, modified = self.broker.place(req, now, self.session_open)
        except OrderRejected as exc:
            s.error(order_id, exc.code, exc.text, exc.advanced_json)
            self.record.reject(s.client_id, order_id, symbol, exc.code, exc.text, now)
            return
        self._next_valid_id = max(self._next_valid_id, order_id + 1)
        self.record.order("modified" if modified else "placed", order, now)
        log.info(
            "client %d: %s order %d %s %d %s %s%s ref=%r",
            s.client_id,
            "modified" if modified else "new",
            order_id,
            order.action,
            order.total_qty,
            order.symbol,
            order.order_type,
            f" @{order.lmt_price or order.aux_price}" if order.order_type != "MKT" else "",
            order.order_ref,
        )
        self._route(
            order, [p.msg_open_order(self._view(order)), p.msg_order_status(self._view(order))]
        )

    def _answer_what_if(
        self,
        s: ClientSession,
        order_id: int,
        stock: StockInfo,
        action: str,
        qty: float,
        order_type: str,
        lmt: float | None,
        aux: float | None,
        tif: str,
        account: str,
    ) -> None:
        """What an order would do to the account (a cash account: margin = position value) and
        its commission at the last close; nothing is placed."""
        account = account or self.cfg.accounts[0]
        if account not in self.broker.accounts:
            s.error(
                order_id, 321, f"Error validating request: account {account} is not managed here"
            )
            return
        side = BUY if action.upper() == "BUY" else SELL
        price = self.mark(stock.symbol)
        month = ny_time(self._now_ns)
        acct = self.broker.accounts[account]
        commission = estimate_commission(
            side,
            float(qty),
            price,
            acct.month_shares.get((month.year, month.month), 0.0),
            self.broker.params,
        )
        values = {k: v for k, v, _ in self.account_values(account)}
        equity, gross = float(values["NetLiquidation"]), float(values["GrossPositionValue"])
        change = side * qty * price
        margins = [gross, gross, equity, change, change, -commission]
        margins += [gross + change, gross + change, equity - commission]
        view = p.OrderView(
            order_id=order_id, client_id=s.client_id, perm_id=0, stock=stock, action=action.upper(),
            total_qty=int(qty), order_type=order_type.upper(), lmt_price=lmt, aux_price=aux,
            tif=tif or "DAY", account=account, order_ref="", outside_rth=False, status="PreSubmitted",
            filled=0, remaining=int(qty), avg_fill_price=0.0, last_fill_price=0.0,
            what_if_margins=tuple(f"{m:.2f}" for m in margins), what_if_commission=round(commission, 6),
        )  # fmt: skip
        s.send(p.msg_open_order(view))
        log.info(
            "client %d: what-if %s %s %s: commission %.2f",
            s.client_id,
            action,
            qty,
            stock.symbol,
            commission,
        )

    def _req_cancel_order(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        order_id = r.integer()
        try:
            order = self.broker.cancel(s.client_id, order_id, self._now_ns)
        except OrderRejected as exc:
            s.error(order_id, exc.code, exc.text)
            return
        self._announce_cancel(order)

    def _announce_cancel(self, order: SimOrder) -> None:
        self.record.order("cancelled", order, self._now_ns)
        log.info("order %d (client %d) cancelled", order.order_id, order.client_id)
        view = self._view(order)
        self._route(
            order,
            [
                p.msg_error(order.order_id, 202, "Order Canceled - reason:"),
                p.msg_order_status(view),
            ],
        )

    def _req_global_cancel(self, s: ClientSession, r: Reader) -> None:
        for order in self.broker.cancel_all(self._now_ns):
            self._announce_cancel(order)

    def _view(self, o: SimOrder) -> p.OrderView:
        return p.OrderView(
            order_id=o.order_id,
            client_id=o.client_id,
            perm_id=o.perm_id,
            stock=self.market.stocks[o.symbol],
            action=o.action,
            total_qty=o.total_qty,
            order_type=o.order_type,
            lmt_price=o.lmt_price,
            aux_price=o.aux_price,
            tif=o.tif,
            account=o.account,
            order_ref=o.order_ref,
            outside_rth=o.outside_rth,
            status=o.status,
            filled=o.filled,
            remaining=o.remaining,
            avg_fill_price=o.avg_fill_price,
            last_fill_price=o.last_fill_price,
            completed_time=format_exec_time(o.done_ns) if o.done_ns else "",
            completed_status=o.status if o.status == "Filled" else f"{o.status}: {o.why_done}",
        )

    def _exec_view(self, f: Fill, req_id: int) -> p.ExecView:
        return p.ExecView(
            req_id=req_id,
            order_id=f.order_id,
            client_id=f.client_id,
            perm_id=f.perm_id,
            stock=self.market.stocks[f.symbol],
            exec_id=f.exec_id,
            time=format_exec_time(f.bar_ns),
            account=f.account,
            side="BOT" if f.side == BUY else "SLD",
            shares=f.qty,
            price=f.price,
            cum_qty=f.cum_qty,
            avg_price=f.avg_price,
            order_ref=f.order_ref,
        )

    def _commission_msg(self, f: Fill) -> bytes:
        realized = None if f.realized_micro is None else f.realized_micro / MICRO
        return p.msg_commission_report(f.exec_id, f.commission, realized)

    def _route(self, order: SimOrder, msgs: list[bytes]) -> None:
        """Order messages go to the session of the client that placed the order."""
        s = self._clients.get(order.client_id)
        if s is None:
            return
        if self.outage:
            if not self._outage_drop:
                s.held.extend(msgs)
            return
        s.send_many(msgs)

    def _deliver(self, events: list[Event]) -> None:
        touched: set[tuple[str, str]] = set()
        for ev in events:
            if isinstance(ev, StatusChange):
                o = ev.order
                self.record.order("status", o, self._now_ns)
                view = self._view(o)
                if o.status == "Cancelled":
                    self._route(o, [p.msg_order_status(view)])
                else:
                    self._route(o, [p.msg_open_order(view), p.msg_order_status(view)])
            elif isinstance(ev, Execution):
                o, f = ev.order, ev.fill
                acct = self.broker.accounts[f.account]
                self.record.fill(f, acct.cash_micro, acct.position(f.symbol).qty, self._now_ns)
                log.info(
                    "fill %s %s %d %s @ %.4f commission %.2f (order %d client %d, ref %r)",
                    f.account,
                    "BOT" if f.side == BUY else "SLD",
                    f.qty,
                    f.symbol,
                    f.price,
                    f.commission,
                    f.order_id,
                    f.client_id,
                    f.order_ref,
                )
                self._deliver_execution(o, f)
                touched.add((f.account, f.symbol))
        for account, symbol in sorted(touched):
            self._push_position(account, symbol)
        for account in sorted({a for a, _ in touched}):
            self._push_account(account)

    def _deliver_execution(self, o: SimOrder, f: Fill) -> None:
        view = self._view(o)
        exec_msg = p.msg_exec_details(self._exec_view(f, -1))
        status = [p.msg_open_order(view), p.msg_order_status(view)]
        comm = self._commission_msg(f)
        s = self._clients.get(o.client_id)
        faults = self.faults
        if s is None:
            return
        execs = [exec_msg, exec_msg] if faults.exec_duplicate else [exec_msg]
        if self.outage:
            if not self._outage_drop:
                s.held.extend([*execs, *status, comm])
            return
        if faults.exec_delay <= 0 and faults.commission_delay <= 0:
            s.send_many([*execs, *status, comm])
            return
        if faults.exec_delay > 0:
            s.send_many(status)
            s.send_later(faults.exec_delay, execs)
        else:
            s.send_many([*execs, *status])
        comm_delay = faults.exec_delay + faults.commission_delay
        if comm_delay > 0:
            s.send_later(comm_delay + 1e-3, [comm])
        else:
            s.send(comm)

    def _req_open_orders(self, s: ClientSession, r: Reader) -> None:
        self._send_open_orders(s, only_client=s.client_id)

    def _req_all_open_orders(self, s: ClientSession, r: Reader) -> None:
        self._send_open_orders(s, only_client=None)

    def _send_open_orders(self, s: ClientSession, only_client: int | None) -> None:
        for o in self.broker.working():
            if only_client is None or o.client_id == only_client:
                v = self._view(o)
                s.send(p.msg_open_order(v))
                s.send(p.msg_order_status(v))
        s.send(p.msg_open_order_end())

    def _req_completed_orders(self, s: ClientSession, r: Reader) -> None:
        for o in sorted(self.broker.orders.values(), key=lambda o: o.perm_id):
            if not o.is_working:
                s.send(p.msg_completed_order(self._view(o)))
        s.send(p.msg_completed_orders_end())

    def _req_executions(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        client_id = r.integer()
        account = r.text()
        since = r.text()
        symbol = r.text().upper()
        sec_type = r.text().upper()
        r.text()  # exchange
        side = r.text().upper()
        since_ns = 0
        if since.strip():
            try:
                since_ns = parse_end_datetime(since, self._now_ns)
            except ValueError:
                since_ns = 0
        for f in self.broker.fills:
            if f.client_id != s.client_id and s.client_id != 0:
                continue
            if client_id and f.client_id != client_id:
                continue
            if account and f.account != account:
                continue
            if symbol and f.symbol != symbol:
                continue
            if sec_type and sec_type != "STK":
                continue
            if side and side not in (("BUY", "BOT") if f.side == BUY else ("SELL", "SLD")):
                continue
            if f.bar_ns < since_ns:
                continue
            s.send(p.msg_exec_details(self._exec_view(f, req_id)))
            s.send(self._commission_msg(f))
        s.send(p.msg_exec_details_end(req_id))

    # ---- positions and accounts

    def mark(self, symbol: str) -> float:
        """The last close (of a bar closed by now) of `symbol`."""
        i = self.market.last_closed_index(symbol, self._now_ns)
        return float(self.market.bars(symbol).close[i]) if i >= 0 else 0.0

    def account_values(self, account: str) -> list[tuple[str, str, str]]:
        acct = self.broker.accounts[account]
        cash = acct.cash_micro
        gross = 0
        unrealized = 0
        realized = 0
        for sym, pos in acct.positions.items():
            realized += pos.realized_micro
            if pos.qty:
                value = usd_to_micro(pos.qty * self.mark(sym))
                gross += value
                unrealized += value - pos.cost_micro
        net = cash + gross
        return [
            ("AccountCode", account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("Currency", "USD", "USD"),
            ("CashBalance", micro_str(cash), "USD"),
            ("TotalCashValue", micro_str(cash), "USD"),
            ("SettledCash", micro_str(cash), "USD"),
            ("NetLiquidation", micro_str(net), "USD"),
            ("EquityWithLoanValue", micro_str(net), "USD"),
            ("GrossPositionValue", micro_str(gross), "USD"),
            ("BuyingPower", micro_str(cash), "USD"),
            ("AvailableFunds", micro_str(cash), "USD"),
            ("ExcessLiquidity", micro_str(cash), "USD"),
            ("RealizedPnL", micro_str(realized), "USD"),
            ("UnrealizedPnL", micro_str(unrealized), "USD"),
        ]

    def _portfolio_msg(self, account: str, symbol: str) -> bytes:
        pos = self.broker.accounts[account].position(symbol)
        price = self.mark(symbol)
        value = pos.qty * price
        return p.msg_portfolio(
            self.market.stocks[symbol],
            pos.qty,
            price,
            value,
            pos.avg_cost,
            value - pos.cost_micro / MICRO if pos.qty else 0.0,
            pos.realized_micro / MICRO,
            account,
        )

    def _req_positions(self, s: ClientSession, r: Reader) -> None:
        s.positions_subscribed = True
        for account in self.cfg.accounts:
            for sym, pos in sorted(self.broker.accounts[account].held().items()):
                s.send(p.msg_position(account, self.market.stocks[sym], pos.qty, pos.avg_cost))
        s.send(p.msg_position_end())

    def _cancel_positions(self, s: ClientSession, r: Reader) -> None:
        s.positions_subscribed = False

    def _req_account_updates(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        subscribe = r.flag()
        account = r.text() or self.cfg.accounts[0]
        if not subscribe:
            s.account_updates = None
            return
        if account not in self.broker.accounts:
            s.error(-1, 321, f"Error validating request: account {account} is not managed here")
            return
        s.account_updates = account
        for key, value, currency in self.account_values(account):
            s.send(p.msg_account_value(key, value, currency, account))
        for sym in sorted(self.broker.accounts[account].held()):
            s.send(self._portfolio_msg(account, sym))
        s.send(p.msg_account_time(ny_time(self._now_ns).strftime("%H:%M")))
        s.send(p.msg_account_download_end(account))

    def _req_account_updates_multi(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        account = r.text() or self.cfg.accounts[0]
        r.text()  # modelCode
        if account not in self.broker.accounts:
            s.error(req_id, 321, f"Error validating request: account {account} is not managed here")
            return
        s.account_multi[req_id] = account
        for key, value, currency in self.account_values(account):
            s.send(p.msg_account_update_multi(req_id, account, key, value, currency))
        s.send(p.msg_account_update_multi_end(req_id))

    def _cancel_account_updates_multi(self, s: ClientSession, r: Reader) -> None:
        r.integer()
        s.account_multi.pop(r.integer(), None)

    def _req_account_summary(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        r.text()  # group
        tags = tuple(t.strip() for t in r.text().split(",") if t.strip())
        s.account_summary[req_id] = tags
        for account in self.cfg.accounts:
            self._send_summary(s, req_id, account, tags)
        s.send(p.msg_account_summary_end(req_id))

    def _send_summary(
        self, s: ClientSession, req_id: int, account: str, tags: tuple[str, ...]
    ) -> None:
        values = {k: (v, c) for k, v, c in self.account_values(account)}
        for tag in tags:
            if tag in values and tag in SUMMARY_TAGS:
                v, c = values[tag]
                s.send(p.msg_account_summary(req_id, account, tag, v, c))

    def _cancel_account_summary(self, s: ClientSession, r: Reader) -> None:
        r.integer()
        s.account_summary.pop(r.integer(), None)

    def _push_position(self, account: str, symbol: str) -> None:
        pos = self.broker.accounts[account].position(symbol)
        msg = p.msg_position(account, self.market.stocks[symbol], pos.qty, pos.avg_cost)
        portfolio = self._portfolio_msg(account, symbol)
        for s in self._live_sessions():
            if s.positions_subscribed:
                s.send(msg)
            if s.account_updates == account:
                s.send(portfolio)

    def _push_account(self, account: str, only_marks: bool = False) -> None:
        values = self.account_values(account)
        if only_marks:
            keep = {"NetLiquidation", "EquityWithLoanValue", "GrossPositionValue", "UnrealizedPnL"}
            values = [v for v in values if v[0] in keep]
        for s in self._live_sessions():
            if s.account_updates == account:
                for key, value, currency in values:
                    s.send(p.msg_account_value(key, value, currency, account))
                s.send(p.msg_account_time(ny_time(self._now_ns).strftime("%H:%M")))
            for req_id, acct in s.account_multi.items():
                if acct == account:
                    for key, value, currency in values:
                        s.send(p.msg_account_update_multi(req_id, account, key, value, currency))
            for req_id, tags in s.account_summary.items():
                self._send_summary(s, req_id, account, tags)

    def _refresh_marks(self) -> None:
        """Held positions are re-marked (portfolio and net liquidation) every 5 market minutes."""
        if (self._now_ns // NS_PER_MINUTE) % 5:
            return
        for account, acct in self.broker.accounts.items():
            held = acct.held()
            if not held:
                continue
            if not any(s.account_updates == account for s in self._live_sessions()):
                continue
            for sym in sorted(held):
                msg = self._portfolio_msg(account, sym)
                for s in self._live_sessions():
                    if s.account_updates == account:
                        s.send(msg)
            self._push_account(account, only_marks=True)

    def _live_sessions(self) -> list[ClientSession]:
        if self.outage:
            return []
        return [s for s in self.sessions if s.ready and not s.closed]

    # ---- faults (the control interface)

    def lose_connectivity(self, data_lost: bool = False, drop_order_events: bool = False) -> None:
        """IB <-> gateway connectivity lost: 1100 to every client; market data stops and order
        messages are held (or dropped) until `restore_connectivity`."""
        self.outage = True
        self._outage_drop = drop_order_events
        self._outage_data_lost = data_lost
        self.record.note("connectivity lost", self._now_ns)
        log.warning("fault: connectivity lost")
        for s in self.sessions:
            if s.ready:
                s.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
                s.flush()

    def restore_connectivity(self) -> None:
        """1102 (data maintained) or, after `lose_connectivity(data_lost=True)`, 1101 with every
        market data subscription dropped; held order messages are delivered."""
        if not self.outage:
            return
        self.outage = False
        data_lost = self._outage_data_lost
        self.record.note("connectivity restored", self._now_ns, data_lost=data_lost)
        log.warning(
            "fault: connectivity restored (%s)", "data lost" if data_lost else "data maintained"
        )
        for s in list(self.sessions):
            if not s.ready:
                continue
            if data_lost:
                for sub in list(s.subs.values()):
                    self._drop_sub(sub)
                s.subs.clear()
                s.error(-1, 1101, "Connectivity between IB and TWS has been restored- data lost.")
            else:
                s.error(
                    -1,
                    1102,
                    "Connectivity between IB and Trader Workstation has been restored - data maintained.",
                )
            s.send_many(s.held)
            s.held.clear()
            s.flush()
        for account in self.cfg.accounts:
            for sym in sorted(self.broker.accounts[account].held()):
                self._push_position(account, sym)
            self._push_account(account)

    def nightly_reset(self, down_seconds: float = 0.0) -> None:
        """Drop every client socket (as the nightly server reset can); optionally refuse new
        connections for `down_seconds` real seconds."""
        self.record.note("nightly reset", self._now_ns)
        log.warning("fault: nightly reset, dropping %d sockets", len(self.sessions))
        self._drop_all(down_seconds)

    def restart(self, down_seconds: float = 0.0) -> None:
        """A gateway restart: sockets dropped and nextValidId rolled back to the first id;
        ids of finished orders are forgotten (working orders survive, as at IB)."""
        self.record.note("restart", self._now_ns)
        log.warning("fault: restart, order ids reset to %d", self.cfg.first_order_id)
        self._drop_all(down_seconds)
        self._next_valid_id = self.cfg.first_order_id
        self.broker.forget_done_ids()
        self._held_ids.clear()

    def _drop_all(self, down_seconds: float) -> None:
        if down_seconds > 0:
            self._stop_listening(down_seconds)
        for s in list(self.sessions):
            s.abort()
        self._clients.clear()

    def _stop_listening(self, seconds: float) -> None:
        """Close the API port for `seconds` real seconds: connects are refused by the OS
        (ECONNREFUSED at once), as while TWS / IB Gateway restarts."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._reopen_task is not None:
            self._reopen_task.cancel()
        log.warning("port %d closed for %.1f s", self._bound_port, seconds)
        self._reopen_task = asyncio.ensure_future(self._listen_again(seconds))

    async def _listen_again(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        while not self._closing:
            try:
                await self._listen(self._bound_port)
            except OSError as exc:
                log.error("cannot listen on port %d again (%s); retrying", self._bound_port, exc)
                await asyncio.sleep(0.5)
                continue
            log.warning("port %d open again", self._bound_port)
            return

    async def _listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientSession(self), self.cfg.host, port, reuse_address=True
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    def apply_fault(self, spec: str) -> None:
        self.faults.apply(spec)
        self.record.note("fault", self._now_ns, spec=spec)
        log.warning("fault switched on: %s", spec)

    def clear_faults(self) -> None:
        self.faults = self.cfg.faults = Faults()
        self.record.note("faults cleared", self._now_ns)

    def status(self) -> dict[str, Any]:
        """A summary for the control port and humans."""
        return {
            "time": ny_time(self._now_ns).isoformat(),
            "mode": "step" if self.clock.paused else f"x{self.clock.speed:g}",
            "clock": self.clock.anchor(),
            "session_open": self.session_open,
            "outage": self.outage,
            "clients": sorted(s.client_id for s in self.sessions if s.ready),
            "next_valid_id": self._next_valid_id,
            "working_orders": len(self.broker.working()),
            "fills": len(self.broker.fills),
            "accounts": {
                a: {
                    "cash": micro_str(acct.cash_micro),
                    "positions": {s: pos.qty for s, pos in sorted(acct.held().items())},
                }
                for a, acct in self.broker.accounts.items()
            },
        }

    _handlers: ClassVar[dict[int, Callable[[GatewayServer, ClientSession, Reader], None]]] = {
        1: _req_mkt_data,
        2: _cancel_sub,
        3: _req_place_order,
        4: _req_cancel_order,
        5: _req_open_orders,
        6: _req_account_updates,
        7: _req_executions,
        8: _req_ids,
        9: _req_contract_details,
        15: _ignore,  # reqAutoOpenOrders
        16: _req_all_open_orders,
        17: _req_managed_accounts,
        20: _req_historical_data,
        25: _cancel_sub,
        49: _req_current_time,
        50: _req_realtime_bars,
        51: _cancel_sub,
        58: _req_global_cancel,
        59: _ignore,  # reqMarketDataType: every type gets the replayed data
        61: _req_positions,
        62: _req_account_summary,
        63: _cancel_account_summary,
        64: _cancel_positions,
        76: _req_account_updates_multi,
        77: _cancel_account_updates_multi,
        87: _req_head_timestamp,
        90: _ignore,  # cancelHeadTimestamp
        99: _req_completed_orders,
    }


def ny_ns(day: pd.Timestamp, hour: int, minute: int) -> int:
    t = pd.Timestamp(year=day.year, month=day.month, day=day.day, hour=hour, minute=minute, tz=NY)
    return int(t.tz_convert("UTC").value)


def _midpoint(agg: AggBars) -> AggBars:
    """MIDPOINT bars: the TRADES prices with no volume (IB sends -1)."""
    return replace(
        agg,
        volume=np.full(len(agg), -1.0),
        wap=np.full(len(agg), -1.0),
        count=np.full(len(agg), -1),
    )

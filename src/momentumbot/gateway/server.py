"""The simulated TWS gateway: an asyncio TCP server speaking the TWS API (server versions
157..178) over bars replayed on a virtual market clock, with the shared fill model and injectable
faults.

`GatewayServer` composes the desks (`gateway.desks`), each owning its state and registering its
own message handlers, and is the one public face: lifecycle, the clock, faults, status."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from momentumbot.config.schema import ExecutionConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.source import BarReader
from momentumbot.execution.costs import cost_params
from momentumbot.gateway.account_rules import USD, BaseCurrency
from momentumbot.gateway.broker import SimBroker, warm_up_fill_model
from momentumbot.gateway.clock import ManualClock, Monotonic, SystemClock, VirtualClock, ny_ns
from momentumbot.gateway.desks.accounts import AccountDesk
from momentumbot.gateway.desks.clock import SESSION_CLOSE, SESSION_OPEN, ClockDesk, Timeline
from momentumbot.gateway.desks.connection import ClientSession, HistSub, MktSub, RtSub, Sub
from momentumbot.gateway.desks.contracts import ContractDesk
from momentumbot.gateway.desks.farms import FarmDesk
from momentumbot.gateway.desks.fault_control import FaultDesk
from momentumbot.gateway.desks.forming_bars import FormingBarsDesk
from momentumbot.gateway.desks.history import HistoryDesk
from momentumbot.gateway.desks.lockstep import (
    LOCKSTEP_IDLE_SECONDS,
    LOCKSTEP_SETTLE_SECONDS,
    SPEED_MAX,
    Lockstep,
)
from momentumbot.gateway.desks.market_data import MarketDataDesk
from momentumbot.gateway.desks.order_reports import OrderReports
from momentumbot.gateway.desks.orders import OrderDesk
from momentumbot.gateway.desks.sessions import Handlers, SessionDesk
from momentumbot.gateway.exec_time import DEFAULT_TWS_TIMEZONE, tws_zone
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import NS, NS_PER_MINUTE, MarketData, ny_time
from momentumbot.gateway.record import Recorder, micro_str

__all__ = [
    "SPEED_MAX",
    "ClientSession",
    "GatewayConfig",
    "GatewayServer",
    "HistSub",
    "ManualClock",
    "MktSub",
    "Monotonic",
    "RtSub",
    "Sub",
    "SystemClock",
    "ny_ns",
]

log = logging.getLogger("momentumbot.gateway")


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
    # cash | margin for every account (IB paper accounts are margin); `account_types` sets
    # one account's type (gateway.account_rules)
    account_type: str = "margin"
    account_types: dict[str, str] = field(default_factory=dict)
    # the accounts' base currency (USD; or e.g. BaseCurrency("EUR", per_usd=Decimal("0.92"),
    # cash=Decimal(50_000)): a second ledger and IB's ExchangeRate); `base_currencies` sets
    # one account's (gateway.account_rules)
    base_currency: BaseCurrency = USD
    base_currencies: dict[str, BaseCurrency] = field(default_factory=dict)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    calendar: str = "XNYS"
    warmup_days: int = 45
    first_order_id: int = 1
    cap_exempt_ref_prefix: str = "flatten"
    record_path: str | None = None
    faults: Faults = field(default_factory=Faults)
    tws_timezone: str = DEFAULT_TWS_TIMEZONE  # the TWS login time zone (naive-local times)
    # a running clock waits for the bar clients to go quiet at each lockstep point (speed
    # SPEED_MAX, `--speed max`, needs it); without it, it holds before the first open until a
    # client has subscribed to bars (gateway.desks.lockstep)
    lockstep: bool = False
    hold_until_client: bool = True
    lockstep_settle_seconds: float = LOCKSTEP_SETTLE_SECONDS
    lockstep_idle_seconds: float = LOCKSTEP_IDLE_SECONDS


@dataclass(frozen=True)
class Desks:
    """The desks a gateway is composed of (`gateway.desks`)."""

    clock: ClockDesk
    sessions: SessionDesk
    contracts: ContractDesk
    market_data: MarketDataDesk
    history: HistoryDesk
    accounts: AccountDesk
    orders: OrderDesk
    reports: OrderReports
    fault_control: FaultDesk
    forming: FormingBarsDesk
    farms: FarmDesk


class GatewayServer:
    """The gateway. Start it with `await start()`; tests drive the clock with `advance*`, and the
    real clock (held client ids, pacing, exec delays, port down time, a running market clock)
    with an injected `monotonic` (`ManualClock().advance(seconds)`)."""

    def __init__(
        self,
        source: BarReader,
        config: GatewayConfig | None = None,
        *,
        monotonic: Monotonic | None = None,
    ) -> None:
        self.cfg = cfg = config or GatewayConfig()
        if math.isinf(cfg.speed) and not (cfg.lockstep or cfg.step_mode):
            raise ValueError("speed max needs lockstep (the clock would race past every order)")
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
            cfg.accounts, cfg.cash, cost_params(cfg.execution), cfg.cap_exempt_ref_prefix,
            account_types={a: cfg.account_types.get(a, cfg.account_type) for a in cfg.accounts},
            base_currencies={
                a: cfg.base_currencies.get(a, cfg.base_currency) for a in cfg.accounts
            },
        )  # fmt: skip
        self.record = Recorder(cfg.record_path)
        self.real: Monotonic = monotonic or SystemClock()
        self.clock = VirtualClock(self.start_ns, cfg.speed, paused=cfg.step_mode, real=self.real)
        self.bar_close_listeners: list[Callable[[int], None]] = []
        self.stats = {"bar_closes": 0, "requests": 0, "connections": 0}
        self.desks = self._compose(Timeline(self.calendar, first, self.start_ns))
        self.sessions: set[ClientSession] = self.desks.sessions.sessions
        self.handlers: Handlers = self.desks.sessions.handlers

    def _compose(self, timeline: Timeline) -> Desks:
        cfg, faults, market, broker, real = (
            self.cfg,
            self.faults,
            self.market,
            self.broker,
            self.real,
        )
        # the desks built later are reached through `self.desks` once it exists
        sessions = SessionDesk(
            host=cfg.host,
            accounts=cfg.accounts,
            faults=faults,
            real=real,
            stats=self.stats,
            market_time=self.now_ns,
            next_valid_id=lambda: self.desks.orders.next_valid_id,
            on_disconnect=lambda s: self.desks.market_data.drop_all(s),
        )
        self.lockstep = Lockstep(
            sessions,
            real,
            lockstep=cfg.lockstep,
            hold_until_client=cfg.hold_until_client,
            settle_seconds=cfg.lockstep_settle_seconds,
            idle_seconds=cfg.lockstep_idle_seconds,
        )
        clock = ClockDesk(
            self.clock,
            timeline,
            self.start_ns,
            sessions,
            on_event=self._on_event,
            next_scheduled=self._next_scheduled,
            run_scheduled=self._run_scheduled,
            lockstep=self.lockstep,
            first_open_ns=min(timeline.open_ns.values(), default=2**62),
        )
        now = clock.now_ns
        contracts = ContractDesk(market, self.calendar, faults, now)
        market_data = MarketDataDesk(market, self.calendar, contracts, sessions, faults, now)
        forming = FormingBarsDesk(
            market, market_data, sessions, faults, lambda: clock.session_open, now
        )
        history = HistoryDesk(
            market, self.calendar, contracts, market_data, forming, faults, real, now
        )
        accounts = AccountDesk(cfg.accounts, broker, market, sessions, now)
        reports = OrderReports(
            market, sessions, accounts, self.record, faults, real, now, tws_zone(cfg.tws_timezone)
        )
        orders = OrderDesk(
            broker, contracts, accounts, reports, self.record, faults, cfg.first_order_id, now,
            session_open=lambda: clock.session_open,
        )  # fmt: skip
        farms = FarmDesk(sessions, self.record, now)
        sessions.farm_greeting = farms.greeting
        history.hmds_down = market_data.hmds_down = forming.hmds_down = farms.hmds_down
        fault_desk = FaultDesk(
            faults, self.record, sessions, market_data, accounts, orders, self.clock, now, farms
        )
        for desk in (clock, contracts, market_data, history, accounts, orders):
            desk.register(sessions.handlers)
        return Desks(
            clock, sessions, contracts, market_data, history, accounts, orders, reports,
            fault_desk, forming, farms,
        )  # fmt: skip

    def _next_scheduled(self) -> int:
        """The next timed event between the calendar's: a scheduled fault or a forming bar."""
        d = self.desks
        return min(d.fault_control.next_scheduled(), d.forming.next_time())

    def _run_scheduled(self) -> bool:
        """Run what falls due; whether it was a lockstep point (the first forming-bar revision
        after a minute's close: a bot that waits for a later bar or a grace steps then)."""
        d = self.desks
        if d.forming.next_time() < d.fault_control.next_scheduled():
            d.forming.run()
            return self.now_ns() % NS_PER_MINUTE <= int(self.faults.forming_bars * NS)
        d.fault_control.run_scheduled()
        return False

    # ---- lifecycle

    async def start(self) -> None:
        # the fill model is compiled (or loaded from the cache) before the clock starts, and a
        # running clock starts when the gateway does, not when it was constructed
        warm_up_fill_model(self.broker.params)
        await self.desks.sessions.listen(self.cfg.port)
        self.desks.clock.start()
        log.info(
            "gateway listening on %s:%d; market time %s, %s; accounts %s",
            self.cfg.host,
            self.port,
            ny_time(self.now_ns()).isoformat(),
            "step mode" if self.cfg.step_mode else f"speed {self.clock.label()}",
            ",".join(self.cfg.accounts),
        )

    @property
    def port(self) -> int:
        """The API port (also while it is closed by a simulated restart)."""
        return self.desks.sessions.port

    @property
    def listening(self) -> bool:
        """False while a simulated reset or restart keeps the port closed."""
        return self.desks.sessions.listening

    async def stop(self) -> None:
        self.desks.sessions.closing = True
        await self.desks.clock.stop()
        await self.desks.sessions.stop()
        await asyncio.sleep(0)
        self.record.close()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- time

    def now_ns(self) -> int:
        return self.desks.clock.now_ns()

    @property
    def session_open(self) -> bool:
        return self.desks.clock.session_open

    def connection_time(self) -> str:
        return self.desks.sessions.connection_time()

    async def advance(self, seconds: float) -> None:
        """Move the market clock forward and process everything that happens on the way."""
        await self.advance_to(self.now_ns() + int(seconds * NS))

    async def advance_minutes(self, minutes: int) -> None:
        await self.advance_to(self.now_ns() + minutes * NS_PER_MINUTE)

    async def advance_to(self, ns: int) -> None:
        await self.desks.clock.advance_to(ns)

    async def advance_to_time(self, hhmm: str, day: str | None = None) -> None:
        """Advance to a New York wall time on `day` (default: the current market day)."""
        d = pd.Timestamp(day) if day else pd.Timestamp(ny_time(self.now_ns()).date())
        h, _, m = hhmm.partition(":")
        await self.advance_to(ny_ns(d, int(h), int(m)))

    def set_speed(self, speed: float) -> None:
        if math.isinf(speed) and not self.cfg.lockstep:
            raise ValueError("speed max needs lockstep (the clock would race past every order)")
        self.clock.set_speed(speed)
        self.desks.clock.wake()

    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()
        self.desks.clock.wake()

    async def flush(self) -> None:
        """Wait until every client's output has left the gateway."""
        for s in list(self.sessions):
            s.flush()
        for _ in range(200):
            if all(s.buffered == 0 for s in self.sessions):
                return
            await asyncio.sleep(0.005)

    # ---- the calendar's events

    def _on_event(self, t: int, kind: int, ref: int) -> None:
        orders = self.desks.orders
        if kind == SESSION_OPEN:
            log.info("session open %s", ny_time(t).date())
            orders.on_session_open()
        elif kind == SESSION_CLOSE:
            orders.on_session_close(t)
            log.info("session close %s", ny_time(t).isoformat())
        else:
            self._on_bar_close(ref)

    def _on_bar_close(self, label: int) -> None:
        """Minute `label` closed: working orders fill in it, subscribers get it (not during an
        outage), held positions are re-marked."""
        self.stats["bar_closes"] += 1
        d = self.desks
        working = self.broker.working_symbols()
        bars = d.market_data.bars_at(label, working)
        if working:
            d.orders.on_bar_close(label, {sym: bar for sym, (_, bar) in bars.items()})
        if not d.sessions.outage:
            d.market_data.publish(label, bars)
        d.accounts.refresh_marks()
        for fn in self.bar_close_listeners:
            fn(label)

    # ---- clients and accounts

    @property
    def outage(self) -> bool:
        return self.desks.sessions.outage

    def client(self, client_id: int) -> ClientSession | None:
        """The session of a connected client id."""
        return self.desks.sessions.clients.get(client_id)

    def mark(self, symbol: str) -> float:
        """The last close (of a bar closed by now) of `symbol`."""
        return self.desks.accounts.mark(symbol)

    def account_values(self, account: str) -> list[tuple[str, str, str]]:
        return self.desks.accounts.account_values(account)

    # ---- faults (the control interface)

    def lose_connectivity(self, data_lost: bool = False, drop_order_events: bool = False) -> None:
        """IB <-> gateway connectivity lost: 1100 to every client; market data stops and order
        messages are held (or dropped) until `restore_connectivity`."""
        self.desks.fault_control.lose_connectivity(data_lost, drop_order_events)

    def restore_connectivity(self) -> None:
        """1102 (data maintained) or, after `lose_connectivity(data_lost=True)`, 1101 with every
        market data subscription dropped; held order messages are delivered."""
        self.desks.fault_control.restore_connectivity()

    def break_farm(self) -> None:
        """2110 (TWS <-> server connectivity broken) without 1100: bars stop and order
        messages are held until `restore_connectivity` (1102)."""
        self.desks.fault_control.break_farm()

    def port_reset(self) -> None:
        """1300 to every client, then its socket is dropped (the port stays open)."""
        self.desks.fault_control.port_reset()

    @property
    def hmds_down(self) -> bool:
        """The HMDS farm is down (`hmds-down`, `hmds-down-after-restore`)."""
        return self.desks.farms.hmds_down()

    def nightly_reset(self, down_seconds: float = 0.0) -> None:
        """Drop every client socket (as the nightly server reset can); optionally refuse new
        connections for `down_seconds` real seconds."""
        self.desks.fault_control.nightly_reset(down_seconds)

    def restart(self, down_seconds: float = 0.0) -> None:
        """A gateway restart: sockets dropped and nextValidId rolled back to the first id;
        ids of finished orders are forgotten (working orders survive, as at IB)."""
        self.desks.fault_control.restart(down_seconds)

    def apply_fault(self, spec: str) -> None:
        self.desks.fault_control.apply(spec)

    def clear_faults(self) -> None:
        self.desks.fault_control.clear()

    def status(self) -> dict[str, Any]:
        """A summary for the control port and humans."""
        return {
            "time": ny_time(self.now_ns()).isoformat(),
            "mode": self.clock.label(),
            "lockstep": self.lockstep.status(),
            "clock": self.clock.anchor(),
            "session_open": self.session_open,
            "outage": self.outage,
            "clients": sorted(s.client_id for s in self.sessions if s.ready),
            "next_valid_id": self.desks.orders.next_valid_id,
            "working_orders": len(self.broker.working()),
            "fills": len(self.broker.fills),
            # the most historical requests / market data lines one client had open at once
            "peak_hist_requests": self.desks.market_data.hist_peak,
            "peak_market_data_lines": self.desks.market_data.lines_peak,
            "accounts": {
                a: {
                    "type": acct.rules.kind,
                    "base_currency": acct.base.code,
                    "cash": micro_str(acct.cash_micro),
                    "settled_cash": micro_str(acct.buying_cash_micro),
                    "positions": {s: pos.qty for s, pos in sorted(acct.held().items())},
                    **(
                        {}
                        if acct.base.is_usd
                        else {acct.base.code.lower() + "_cash": micro_str(acct.base_cash_micro)}
                    ),
                }
                for a, acct in self.broker.accounts.items()
            },
        }

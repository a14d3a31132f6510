"""Composition of paper and live trading: config + IB broker + journal + the live engine + risk
-> the same run folder a backtest writes, plus the journal.

The trader is the asyncio edge. It turns broker events into engine inputs (journaled first,
then applied), steps the engine once per closed minute on the server's clock, and turns the
engine's new and ended orders into IB orders and cancels, after the journal has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot import __version__
from momentumbot.app.backtest import write_results
from momentumbot.app.supervisor import Failure, Supervisor, TaskFailed, describe
from momentumbot.config.loader import config_to_toml, parse_config
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import ConfigError, DataError, MomentumbotError
from momentumbot.domain.units import EXCHANGE_TZ, NS, NS_PER_MINUTE, usd_to_micro
from momentumbot.engine import kernel as k
from momentumbot.engine.live import LiveEngine, StepResult
from momentumbot.execution.broker_protocol import BrokerListener, ExecReport, OrderReport
from momentumbot.execution.ib_broker import (
    CONNECTIVITY_LOST,
    RESTORED_DATA_LOST,
    BrokerSettings,
    BrokerUnavailable,
    ConnectionRefused,
    ConnectionState,
    IbBroker,
)
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.journal.reconcile import EngineOrder, make_ref, parse_ref, reconcile
from momentumbot.reporting import run_folder as rf
from momentumbot.risk.kill_switch import KillSwitch
from momentumbot.risk.limits import RiskLimits
from momentumbot.trading import guards, risk_gate
from momentumbot.trading.booking import FillBook
from momentumbot.trading.console import ny as _ny
from momentumbot.trading.console import status_table
from momentumbot.trading.folder import RunFolder
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.risk_gate import SIDE_NAME
from momentumbot.trading.routing import OrderRouter

log = logging.getLogger("momentumbot.trade")


# order errors that do not end an order: cancel confirmations, a cancel or modify that crossed
# a fill (the fill's messages follow), an order that cannot be cancelled any more
REJECT_CODES_INFO = {104, 161, 202, 10147, 10148}
SUBSCRIPTIONS_IN_FLIGHT = 16
TIME_FAILURES_BEFORE_RECONNECT = 2  # unanswered server-time requests in a row, connected
REFUSED_RETRY_MAX = 3.0  # seconds between tries while the port refuses connections


class TradingStopped(MomentumbotError):
    """Trading stopped because the bot met something it cannot explain; read the reason and
    the run folder's journal before starting again."""

    exit_code = 6


def default_trade_dir(root: Path = Path("runs")) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return root / f"trade-{stamp}"


@dataclass(frozen=True)
class TradeOptions:
    out_dir: Path
    host: str | None = None
    port: int | None = None
    client_id: int | None = None
    live: bool = False
    sessions: int | None = None
    rearm: bool = False
    console: bool = True
    symbols: tuple[str, ...] | None = None
    market_data_wait_seconds: float = 5.0


@dataclass
class TradeOutcome:
    out_dir: Path
    stop_reason: str
    sessions: int
    orders: int
    fills: int
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class _GuardedListener:
    """The trader's broker callbacks, each wrapped by the supervisor."""

    on_execution: Callable[[ExecReport], None]
    on_commission: Callable[[str, int], None]
    on_order_status: Callable[[OrderReport], None]
    on_order_error: Callable[[str, int, str], None]
    on_connectivity: Callable[[int, str], None]
    on_disconnected: Callable[[], None]


@dataclass
class _Stats:
    reconnects: int = 0
    outages: int = 0
    resubscribes: int = 0
    resent: int = 0
    adopted: int = 0
    rejected: int = 0
    stale_streams: int = 0
    step_seconds: list[float] = field(default_factory=list)


class Trader:
    """One paper or live trading run in one run folder."""

    def __init__(
        self,
        cfg: AppConfig,
        opts: TradeOptions,
        *,
        calendar: TradingCalendar | None = None,
        status_sink: Callable[[Trader], None] | None = None,
    ) -> None:
        syms = list(opts.symbols) if opts.symbols else list(cfg.symbols)
        if not syms:
            raise ConfigError(
                "symbols: the symbol list is empty; set `symbols = [...]` in the config or pass --symbols"
            )
        self.cfg = cfg.model_copy(update={"symbols": syms})
        self.opts = opts
        self.run_dir = opts.out_dir
        self.calendar = calendar or TradingCalendar(cfg.session.calendar)
        self.symbols = syms
        self.n = len(syms)
        self.limits = RiskLimits.from_config(cfg.risk)
        b = cfg.broker
        self.settings = BrokerSettings.from_config(
            b, host=opts.host, port=opts.port, client_id=opts.client_id
        )
        self.stale_ns = int(b.stale_stream_seconds * NS)
        self.minutes = MinuteAssembler(syms, int(b.bar_grace_seconds * NS), self.stale_ns)
        self.kill = KillSwitch(self.run_dir)
        self.conn = ConnectionState()
        self.stats = _Stats()
        self.status_sink = status_sink
        self.journal: jr.Journal | None = None
        self.engine: LiveEngine | None = None
        self.broker: IbBroker | None = None
        self.run_id = ""
        self.account = ""
        self.kind = "live" if opts.live else "paper"
        self.blocked = np.zeros(self.n, bool)
        self.fills: FillBook  # made in _start with the router
        self.router: OrderRouter  # made in _start, once the engine and the broker are there
        self.server_ns = 0
        self.progress_ns = 0
        self._step_seq = 0
        self._catchup_until = 0  # fresh start mid-session: minutes closing by then are not traded
        self.halted = ""
        self.fatal = ""
        self.stop_reason = ""
        self._done = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._time_wanted = True
        self._sends_synced = 0
        self.folder = RunFolder(self.run_dir)
        self._cash_at_start: int | None = None
        self._session_start_equity: float | None = None
        self._session_of_equity: pd.Timestamp | None = None
        self.sup = Supervisor(
            self._record_failure,
            self._on_fatal,
            backoff_initial=cfg.broker.reconnect_initial_seconds,
            backoff_max=cfg.broker.reconnect_max_seconds,
        )
        self.failure: Failure | None = None
        self._time_failures = 0
        self.on_step: Callable[[StepResult], None] | None = None

    # ================================================================ the run

    async def run(self) -> TradeOutcome:
        """Trade until the sessions are done, a stop is asked for, or something is wrong."""
        self._open_folder()
        loop = asyncio.get_running_loop()
        self.kill.install_signals(loop, self._wake.set)
        error: BaseException | None = None
        try:
            await self._start()
            try:
                await self._loop()
            except (MomentumbotError, asyncio.CancelledError):
                raise
            except Exception as exc:
                # the minute loop itself failed: its engine may be ahead of the journal, so
                # no flatten from it; the restart resumes from the journal
                self.sup.report("minutes", "fatal", exc)
            if self.failure is None:
                await self._settle_commissions()
        except BaseException as exc:
            error = exc
            if not self.stop_reason:
                self.stop_reason = f"error: {exc}"
            raise
        finally:
            self.kill.remove_signals(loop)
            if error is None and self.failure is not None:
                error = self.failure.error
            await self._finish(error)
        if self.failure is not None:
            raise TaskFailed(
                f"{describe(self.failure)}; the traceback is in {self.run_dir / 'run.log'}; "
                "run the same command to resume the run folder"
                + (f" ({self.fatal})" if self.fatal else "")
            )
        if self.fatal:
            raise TradingStopped(self.fatal)
        return self._outcome

    @property
    def session_start_equity(self) -> float | None:
        """The equity the day's loss counts from (the console shows P&L today from it)."""
        return self._session_start_equity

    # ---------------------------------------------------------------- failures

    def _record_failure(self, failure: Failure) -> None:
        """Every failed task is journaled (table `errors`) as well as logged."""
        if self.journal is not None:
            self.journal.add_error(
                failure.task, failure.policy, failure.message, failure.traceback, self.server_ns
            )

    def _on_fatal(self, failure: Failure) -> None:
        self.failure = failure
        self.kill.trip(describe(failure))
        self._wake.set()

    def _guarded(self) -> BrokerListener:
        """The listener the broker calls: each callback under the supervisor."""
        sup = self.sup
        return _GuardedListener(
            on_execution=sup.guard("fills", self.on_execution),
            on_commission=sup.guard("fills", self.on_commission),
            on_order_status=sup.guard("orders", self.on_order_status),
            on_order_error=sup.guard("orders", self.on_order_error),
            on_connectivity=sup.guard("connection", self.on_connectivity),
            on_disconnected=sup.guard("connection", self.on_disconnected),
        )

    # ---------------------------------------------------------------- folder

    def _open_folder(self) -> None:
        self.journal = self.folder.open()
        self.kill.clear_file()

    def _close_folder(self) -> None:
        self.folder.close()

    # ---------------------------------------------------------------- start

    def _check_config_guards(self) -> None:
        guards.check_config(
            self.cfg.broker, self.limits, live=self.opts.live, port=self.settings.port
        )

    async def _start(self) -> None:
        self._check_config_guards()
        j = self.journal
        assert j is not None
        resume = not j.is_new
        if resume:
            self._check_resume_config(j)
        else:
            self.run_id = uuid.uuid4().hex[:8]
            j.set_many(
                {
                    "run_id": self.run_id,
                    "kind": self.kind,
                    "version": __version__,
                    "config": config_to_toml(self.cfg),
                    "symbols": json.dumps(self.symbols),
                    "state": "starting",
                }
            )
            rf.write_config(self.cfg, self.run_dir / "config.toml")
        rearmed = bool(self.opts.rearm and j.get("halted"))
        if rearmed:
            log.warning("re-armed: the halt (%s) is lifted", j.get("halted"))
            with j.transaction():
                j.set("halted", "")
                j.add_input(rp.NOTE, None, None, {"rearm": True})
        self.halted = j.get("halted") or ""
        j.set_many({"state": "starting", "pid": str(os.getpid())})
        self.broker = IbBroker(self.settings, self._guarded())
        engine_orders_working = resume and any(
            o.state not in jr.DONE_STATES for o in j.orders().values()
        )
        log.info(
            "%s run %s: connecting to %s:%d as client %d",
            self.kind, self.run_id, self.settings.host, self.settings.port, self.settings.client_id,
        )  # fmt: skip
        await self.broker.connect(allow_fallback=not engine_orders_working)
        self.conn.connected = True
        self._guard_account(j)
        await self.broker.qualify(self.symbols)
        if (
            not self.cfg.broker.allow_delayed_data
            or self.cfg.broker.order_type == "marketable_limit"
        ):
            problems = await self.broker.market_data_problems(
                self.symbols,
                self.opts.market_data_wait_seconds,
                keep=self.cfg.broker.order_type == "marketable_limit",
            )
            if not self.cfg.broker.allow_delayed_data:
                for sym, why in problems.items():
                    self.blocked[self.minutes.index[sym]] = True
                    log.warning("%s: %s; no new buys (allow_delayed_data = false)", sym, why)
        self.engine = LiveEngine(self.cfg, self.symbols, self.calendar)
        self.router = OrderRouter(
            journal=j, broker=self.broker, engine=self.engine, run_id=self.run_id,
            cfg=self.cfg.broker, now_ns=lambda: self.server_ns,
            can_trade=lambda: self.conn.can_trade, describe_connection=self.conn.describe,
        )  # fmt: skip
        self.fills = FillBook(j, self.engine, self.router, now_ns=lambda: self.server_ns)
        if resume:
            stats = rp.replay(j, self.engine)
            self.fills.fill_index = dict(stats.fill_index)
            log.info(
                "journal replayed: %d inputs, %d minutes, %d fills; next minute %s",
                stats.inputs, stats.steps, stats.fills, _ny(self.engine.next_label) if self.engine.started else "-",
            )  # fmt: skip
        if rearmed and self.engine.started and self.engine.sessions:
            # the loss so far is accepted: the day's loss counts from here
            day = str(self.engine.sessions[-1].date())
            j.set_many({"loss_reference": f"{day}|{self.engine.equity()!r}"})
        self.router.state = {oid: o.state for oid, o in j.orders().items()}
        self.fills.requeue_unbooked(self.account)
        self.broker.raise_order_id_floor(j.max_ib_order_id() + 1)
        self.server_ns = await self.broker.server_time_ns()
        self._check_calendar_covers()
        snap_ok = await self._reconcile("start")
        if not snap_ok:
            return
        if not self.engine.started:
            await self._warm_up()
        else:
            await self._subscribe_all(self._catchup_duration())
        self.conn.resyncing = False
        j.set_many({"state": "trading"})
        log.info(
            "trading %d symbols (%s) on %s, server time %s",
            self.n, ", ".join(self.symbols), self.account, _ny(self.server_ns),
        )  # fmt: skip

    def _check_resume_config(self, j: jr.Journal) -> None:
        self.run_id = j.get("run_id") or ""
        stored = j.get("config") or ""
        try:
            import tomllib

            stored_cfg = parse_config(tomllib.loads(stored), f"{j.path} (config)")
        except (ValueError, ConfigError) as exc:
            raise jr.JournalError(f"{j.path}: the stored config is unreadable: {exc}") from None
        if json.loads(j.get("symbols") or "[]") != self.symbols:
            raise ConfigError(
                f"{self.run_dir}: this run trades {json.loads(j.get('symbols') or '[]')}, not "
                f"{self.symbols}; use the same symbols or a new --out folder"
            )
        mine = self.cfg.model_dump(mode="json")
        theirs = stored_cfg.model_dump(mode="json")
        for section in ("portfolio", "strategy", "allocation", "execution", "session"):
            if mine[section] != theirs[section]:
                raise ConfigError(
                    f"{self.run_dir}: the run was started with a different [{section}] section; "
                    "resume it with the same config (its config.toml) or trade into a new --out folder"
                )
        stored_kind = j.get("kind") or "paper"
        if stored_kind != self.kind:
            raise ConfigError(f"{self.run_dir}: this is a {stored_kind} run; resume it as such")
        log.info("resuming run %s from its journal", self.run_id)

    def _guard_account(self, j: jr.Journal) -> None:
        assert self.broker is not None
        stored = j.get("account")
        account = guards.choose_account(
            self.broker.managed_accounts(), self.cfg.broker.account, live=self.opts.live,
            stored=stored, run_dir=self.run_dir,
        )  # fmt: skip
        if not stored:
            j.set_many({"account": account})
        self.account = account
        self.broker.account = account

    # ---------------------------------------------------------------- warm-up

    def _sessions_opened(self, since: pd.Timestamp) -> pd.DatetimeIndex:
        """Sessions from day `since` that have opened by the server's time (empty before the
        next one opens: at night, on a weekend or a holiday)."""
        return self.calendar.sessions_opened(since, self.server_ns)

    def _first_session(self) -> pd.Timestamp:
        """The session being traded now, or the next one."""
        s = self.calendar.session_at_or_after(self.server_ns)
        if s is None:
            raise DataError(
                f"the {self.calendar.name} calendar has no session after {_ny(self.server_ns)} "
                f"(it ends {self.calendar.last_session.date()}); upgrade exchange_calendars"
            )
        return s

    def _check_calendar_covers(self) -> None:
        """Past the calendar's last date is a clear error at start, not a traceback hours later."""
        now = self.calendar.session_at_or_after(self.server_ns)
        need = self.opts.sessions or 5
        last = self.calendar.last_session
        left = 0 if now is None else len(self.calendar.sessions(now, last))
        if left < need:
            raise DataError(
                f"the {self.calendar.name} calendar knows sessions only up to {last.date()} "
                f"(server time {_ny(self.server_ns)}); this run needs {need} more: upgrade "
                "exchange_calendars (`pip install -U exchange_calendars`)"
            )

    def _catchup_duration(self) -> str:
        """History to ask for on a resubscribe: every session from the engine's next minute
        to now, plus the one before. The extra session keeps the answer from being empty (IB
        answers an empty range with error 162 and no stream): in the first seconds of a
        session, before its first bar closed, "1 D" holds no bar at all. Its bars are
        older than the engine's next minute and are dropped."""
        assert self.engine is not None
        day = pd.Timestamp(self.engine.next_label, tz="UTC").tz_convert(EXCHANGE_TZ)
        n = len(self._sessions_opened(day.tz_localize(None).normalize()))
        return f"{n + 1} D"

    async def _warm_up(self) -> None:
        """History for the warm-up sessions (plus one before, to know which symbols have
        older bars) and today's bars so far, kept up to date from then on."""
        assert self.engine is not None and self.journal is not None
        first = self._first_session()
        warm = self.engine.warmup_sessions(first)
        grid = self.engine.warmup_grid(first)
        before = self.calendar.sessions_before(warm[0] if len(warm) else first, 1)
        start_day = before[0] if len(before) else (warm[0] if len(warm) else first)
        n_days = len(self._sessions_opened(start_day))
        log.info(
            "warming up from %s: %d warm-up sessions before %s, %d days of history",
            start_day.date(), len(warm), first.date(), n_days,
        )  # fmt: skip
        history = await self._subscribe_all(f"{max(n_days, 1)} D")
        m = grid.n_minutes
        o = np.full((m, self.n), np.nan)
        c = np.full((m, self.n), np.nan)
        v = np.full((m, self.n), np.nan)
        started = np.zeros(self.n, bool)
        first_label = int(grid.label_ns[0]) if m else self.engine.next_label
        for j, sym in enumerate(self.symbols):
            bars = history[sym]
            if bars.ts.shape[0] and int(bars.ts[0]) < first_label:
                started[j] = True
            if m:
                idx = np.searchsorted(grid.label_ns, bars.ts)
                ok = (idx < m) & (grid.label_ns[np.minimum(idx, m - 1)] == bars.ts)
                o[idx[ok], j] = bars.open[ok]
                c[idx[ok], j] = bars.close[ok]
                v[idx[ok], j] = bars.volume[ok]
        data, info = rp.warmup_input(first, o, c, v, started)
        with self.journal.transaction():
            self.journal.add_input(rp.WARMUP, None, data, info)
            rp.apply_input(self.engine, rp.WARMUP, None, data, info)
            self.journal.set("first_session", str(first.date()))
        self._catchup_until = self.server_ns
        nxt = self.engine.next_label
        self.minutes.drop_before(nxt)
        if self.server_ns > self.engine.session_open_ns:
            log.warning(
                "started during the session (%s): minutes before it are replayed for bands, "
                "shadow books and quiet volume; their orders are not sent",
                _ny(self.server_ns),
            )

    async def _subscribe_all(self, duration: str) -> dict[str, Any]:
        """(Re)subscribe every symbol's bar stream, several requests in flight (IB allows 50
        at once; the broker paces their starts); initial bars join the pending minutes."""
        assert self.broker is not None and self.engine is not None
        broker = self.broker
        out: dict[str, Any] = {}
        gate = asyncio.Semaphore(SUBSCRIPTIONS_IN_FLIGHT)
        on_bar = self.sup.guard(
            "streams", self._on_stream_bar, policy="retry",
            on_retry=lambda: self._start_resync("a bar stream callback failed"),
        )  # fmt: skip

        async def one(sym: str) -> None:
            async with gate:
                bars = await broker.subscribe_bars(sym, duration, on_bar)
            out[sym] = bars
            assert self.engine is not None
            nxt = self.engine.next_label if self.engine.started else 0
            for i in range(bars.ts.shape[0]):
                label = int(bars.ts[i])
                if label >= nxt:
                    self.minutes.store(sym, label, bars.open[i], bars.close[i], bars.volume[i])

        tasks = [asyncio.ensure_future(one(sym)) for sym in self.symbols]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        now = await broker.server_time_ns()
        self.server_ns = max(self.server_ns, now)
        self.minutes.mark_alive(now)
        self.stats.resubscribes += 1
        return {sym: out[sym] for sym in self.symbols}

    # ---------------------------------------------------------------- reconcile

    def _engine_orders(self) -> dict[int, EngineOrder]:
        assert self.engine is not None and self.journal is not None
        e = self.engine
        out: dict[int, EngineOrder] = {}
        pending_qty = self.fills.pending_quantity()
        for oid, o in self.journal.orders().items():
            if oid >= e.order_count():
                continue
            sym, side, qty, _reason, _dec, status, filled = e.order_row(oid)
            out[oid] = EngineOrder(
                oid=oid,
                symbol=sym,
                side=side,
                quantity=qty,
                filled=filled + pending_qty.get(oid, 0),
                working=status == "working",
                state=self.router.state.get(oid, o.state),
            )
        return out

    async def _reconcile(self, why: str) -> bool:
        """Compare with IB; act on what can be explained; stop on what cannot."""
        assert self.broker is not None and self.journal is not None and self.engine is not None
        snap = await self.broker.snapshot()
        j = self.journal
        positions = self.fills.pending_positions(self.engine.positions())
        expected_cash = None
        start_cash = j.get("account_cash_start")
        if start_cash is not None:
            expected_cash = (
                int(start_cash)
                + self.engine.cash_micro
                - usd_to_micro(self.cfg.portfolio.initial_cash)
            )
            expected_cash += self.fills.pending_cash_micro()
        known = set(j.fills())
        r = reconcile(
            run_id=self.run_id,
            client_id=self.broker.client_id,
            symbols=self.symbols,
            orders=self._engine_orders(),
            known_exec_ids=known,
            positions=positions,
            snapshot=snap,
            expected_cash_micro=expected_cash,
        )
        for w in r.warnings:
            log.warning("reconcile (%s): %s", why, w)
        if not r.agrees:
            self.fatal = (
                f"reconciliation ({why}) found what it cannot explain; not trading: "
                + "; ".join(r.mismatches)
            )
            log.error(self.fatal)
            self._done = True
            return False
        if start_cash is None and snap.cash_micro is not None:
            need = usd_to_micro(self.cfg.portfolio.initial_cash)
            if snap.cash_micro < need:
                raise ConfigError(
                    f"[portfolio] initial_cash {self.cfg.portfolio.initial_cash:,.2f} USD is more "
                    f"than the cash in {self.account} ({snap.cash_micro / 1e6:,.2f} USD)"
                )
            j.set_many({"account_cash_start": str(snap.cash_micro)})
        server = self.server_ns
        with j.transaction():
            for oid, rep in r.confirmed.items():
                j.update_order(
                    oid, server, ib_order_id=rep.ib_order_id, perm_id=rep.perm_id,
                    client_id=rep.client_id,
                )  # fmt: skip
                if self.router.state.get(oid) in (jr.INTENT, jr.SENT):
                    self.router.set_state(oid, jr.WORKING, f"confirmed at IB ({why})")
            for oid, reason in r.ended:
                self._end_from_broker(oid, jr.CANCELLED, f"{reason} ({why})")
        for ex in sorted(r.adopt, key=lambda e: (e.time_ns, e.exec_id)):
            log.warning(
                "reconcile (%s): adopting execution %s: %s %d %s @ %s",
                why, ex.exec_id, SIDE_NAME[ex.side], ex.quantity, ex.symbol, ex.price,
            )  # fmt: skip
            self.stats.adopted += 1
            self._on_exec(ex, adopted=True)
        known_fills = j.fills()
        for ex in snap.executions:
            f = known_fills.get(ex.exec_id)
            if (
                f is not None
                and ex.commission_micro is not None
                and (f.reported_commission_micro != ex.commission_micro)
            ):
                self.on_commission(ex.exec_id, ex.commission_micro)
        for ref in r.cancel:
            log.warning("reconcile (%s): %s is working at IB but not for us: cancelling", why, ref)
            self.broker.cancel(ref)
        for oid in r.resend:
            log.warning("reconcile (%s): order %d never reached IB: sending it", why, oid)
            self.stats.resent += 1
            self.router.place(oid, resend=True)
        self.broker.adopt_open_orders()
        log.info("reconcile (%s): %s", why, r.summary())
        return True

    # ================================================================ the loop

    async def _loop(self) -> None:
        """Step what is complete; ask the server's time when a minute waits for it, after
        every step (the answer also proves the gateway has read our orders), and every poll
        interval; stop when asked."""
        stop_deadline = 0.0
        poll = self.cfg.broker.server_time_poll_seconds
        while True:
            # a stop is dealt with before the next step: no decision after it was asked for
            if (self.kill.check_file() or self.kill.tripped) and not self._stopping:
                self._stopping = True
                self.stop_reason = self.kill.reason
                log.warning("stopping: %s", self.kill.reason)
                if self.failure is not None:
                    await self._emergency_flatten()
                else:
                    self._stop_trading()
                stop_deadline = time.monotonic() + self.cfg.risk.stop_wait_seconds
            self._try_step()
            if self.fatal or self._done:
                break
            if self._stopping and (self._stop_settled() or time.monotonic() > stop_deadline):
                if not self._stop_settled():
                    log.warning(
                        "stop: the flatten has not filled within %g s; its orders stay at IB",
                        self.cfg.risk.stop_wait_seconds,
                    )
                break
            if self._time_wanted and self.conn.connected:
                self._time_wanted = False
                await self._sync_time()
                continue
            self._wake.clear()
            woken = await _wait_event(self._wake, poll)
            if not woken:
                self._time_wanted = True

    async def _sync_time(self) -> None:
        """One server-time round trip; then progress = the minute the bot has dealt with."""
        if self.broker is None:
            return
        seq = self._step_seq
        try:
            t = await self.broker.server_time_ns()
        except (ConnectionError, TimeoutError, OSError) as exc:
            self._time_failures += 1
            if not self.broker.connected:
                return  # the reconnect deals with it
            log.warning(
                "the gateway did not answer a server-time request (%s; %d in a row)",
                exc, self._time_failures,
            )  # fmt: skip
            if self._time_failures >= TIME_FAILURES_BEFORE_RECONNECT:
                log.error("the gateway stopped answering: dropping the connection to reconnect")
                self._time_failures = 0
                self.broker.drop()
            return
        self._time_failures = 0
        self.server_ns = max(self.server_ns, t)
        e = self.engine
        if seq == self._step_seq and e is not None and e.started and self.conn.can_trade:
            self._set_progress(e.next_label)
        self.router.limits_to_market()
        try:
            self._check_stale()
        except Exception as exc:
            self.sup.report("stale-watch", "retry", exc)  # the next poll tries again

    async def _settle_commissions(self, timeout: float = 5.0) -> None:
        """Commission reports can trail their executions: wait a little for the last ones
        so the report's cash is the broker's (reconciliation corrects any later)."""
        end = time.monotonic() + timeout
        while self.fills.unreported and self.conn.connected and time.monotonic() < end:
            await asyncio.sleep(0.02)
        if self.fills.unreported:
            log.warning(
                "%d fills still have the model's commission, not the broker's report",
                len(self.fills.unreported),
            )

    def _stop_settled(self) -> bool:
        if self.engine is None or not self.engine.started:
            return True
        flatten = self.cfg.risk.flatten_on_stop or self.failure is not None
        return not self.engine.working_orders() or (not flatten and not self.router.held)

    async def _emergency_flatten(self) -> None:
        """A task failed and left the books in doubt: flatten if IB agrees with the books,
        else leave everything as it is (the restart's reconciliation sorts it out)."""
        e = self.engine
        if e is None or not e.started or not self.conn.can_trade:
            log.error("not flattening after the failure: not connected or not started")
            return
        try:
            agrees = await self._reconcile("before the emergency flatten")
        except Exception as exc:
            log.error("not flattening after the failure: reconciliation failed (%s)", exc)
            return
        if not agrees:
            return
        log.error("flattening every position after the failure")
        self._stop_trading(flatten=True)

    def _kick_time(self) -> None:
        self._time_wanted = True
        self._wake.set()

    # ---------------------------------------------------------------- minutes

    def _on_stream_bar(self, sym: str, bar: Any) -> None:
        if self.engine is None:
            return
        label = IbBroker.bar_label(bar)
        if not self.engine.started:  # warming up: keep it, the warm-up sorts it out
            self.minutes.store(sym, label, float(bar.open), float(bar.close), float(bar.volume))
            return
        if label < self.engine.next_label:
            return
        row = self.minutes.store(sym, label, float(bar.open), float(bar.close), float(bar.volume))
        if label == self.engine.next_label and row.seen.all():
            self._wake.set()
        else:
            self._kick_time()

    def _alive(self) -> int:
        assert self.engine is not None
        return self.minutes.alive(self.server_ns, self.engine.session_open_ns)

    def _try_step(self) -> None:
        e = self.engine
        if e is None or not e.started or self.fatal:
            return
        stepped = False
        while self.conn.can_trade and not self._done:
            t = e.next_label
            if not self.minutes.complete(t, self.server_ns, e.session_open_ns):
                break
            self._step(t)
            stepped = True
        if stepped:
            self._step_seq += 1
            if self.router.sends != self._sends_synced:
                # a round trip proves the broker has read the orders before we report progress
                self._sends_synced = self.router.sends
                self._kick_time()
            else:
                self._time_wanted = False
                self._set_progress(e.next_label)
            if self.status_sink is not None:
                self.status_sink(self)

    def _set_progress(self, progress: int) -> None:
        """The bot has dealt with every minute before `progress` (tests and monitors wait
        on it; the journal keeps it as meta `progress_ns`)."""
        if progress > self.progress_ns:
            self.progress_ns = progress
            if self.journal is not None:
                self.journal.set_many({"progress_ns": str(progress)})

    def _step(self, t: int) -> None:
        e, j = self.engine, self.journal
        assert e is not None and j is not None
        t0 = time.perf_counter()
        self.fills.book_due(t)
        row = self.minutes.pop(t)
        catchup = t + NS_PER_MINUTE <= self._catchup_until
        # a minute of a session that has closed by now (the bot was down): only sells go out
        closed_session = e.session_close_ns <= self.server_ns
        with j.transaction(durable=True):
            data = jr.pack(row.o, row.c, row.v)
            res = e.step(t, row.o, row.c, row.v)
            adjust = risk_gate.gate(
                e, res.new_orders, catchup=catchup, closed_session=closed_session,
                blocked=self.blocked, halted=self.halted,
            )  # fmt: skip
            for a in adjust:
                if a[1] <= 0:
                    e.veto(a[0])
                else:
                    e.resize(a[0], a[1])
            j.add_input(rp.STEP, t, data, {"adjust": adjust} if adjust else {})
            j.add_mark(
                t + NS_PER_MINUTE, e.cash_micro,
                float(e._marks.positions_value[-1]) if e._marks.positions_value else 0.0,
                e.positions(),
            )  # fmt: skip
            why = {a[0]: a[2] for a in adjust}
            self._journal_new(res, t + NS_PER_MINUTE, why)
            self._check_daily_loss(t, res)
        self._dispatch(res)
        if self.on_step is not None:
            self.on_step(res)
        self.stats.step_seconds.append(time.perf_counter() - t0)
        if res.session_ended:
            log.info(
                "session %s done: equity %.2f, positions %s",
                e.sessions[-1].date(), e.equity(), e.positions() or "none",
            )  # fmt: skip
            if self.opts.sessions is not None and e.sessions_completed >= self.opts.sessions:
                self._done = True
                self.stop_reason = self.stop_reason or f"{e.sessions_completed} sessions done"

    def _journal_new(self, res: StepResult, decided: int, why: dict[int, str]) -> None:
        e, j = self.engine, self.journal
        assert e is not None and j is not None
        order_type = "LMT" if self.cfg.broker.order_type == "marketable_limit" else "MKT"
        for oid in res.new_orders:
            sym, side, qty, reason, dec, status, _f = e.order_row(oid)
            state = jr.INTENT if status == "working" else jr.SKIPPED
            detail = why.get(oid, "") or ("cost filter" if status == "skipped" else "")
            j.add_order(
                oid, make_ref(reason, self.run_id, oid), sym, SIDE_NAME[side], qty, reason, dec,
                state, order_type=order_type if state == jr.INTENT else None,
                server_ns=self.server_ns, detail=detail,
            )  # fmt: skip
            self.router.state[oid] = state
        for oid in res.ended_orders:
            st = self.router.state.get(oid)
            if st == jr.INTENT:
                self.router.set_state(oid, jr.LOST, "ended before it was sent")
            elif st not in jr.DONE_STATES:
                j.order_event(oid, "cancel", "the engine replaced or cancelled it", self.server_ns)

    def _check_daily_loss(self, t: int, res: StepResult) -> None:
        """The minute step halts on the daily loss (risk.checks) with its flatten in `res`;
        the run stays halted (journal meta `halted`) until `trade --rearm`."""
        e, j = self.engine, self.journal
        assert e is not None and j is not None
        day = e.sessions[-1]
        if self._session_of_equity != day:
            self._session_of_equity = day
            self._session_start_equity = e.session_start_equity()
            ref_day, _, ref_equity = (j.get("loss_reference") or "").partition("|")
            if ref_day == str(day.date()) and ref_equity:
                self._session_start_equity = float(ref_equity)
        if not res.halt or self.halted:
            return
        reason = res.halt
        log.error("risk: %s: flattening and halting until `momentumbot trade --rearm`", reason)
        self.halted = reason
        j.set("halted", reason)
        j.add_input(rp.NOTE, t, None, {"halt": reason})

    def _stop_trading(self, *, flatten: bool | None = None) -> None:
        e, j = self.engine, self.journal
        if e is None or j is None or not e.started:
            self._done = True
            return
        decided = e.next_label
        if flatten is None:
            flatten = self.cfg.risk.flatten_on_stop
        kind = rp.FLATTEN if flatten else rp.CANCEL_ALL
        with j.transaction():
            j.add_input(rp.NOTE, decided, None, {"stop": self.kill.reason})
            j.add_input(kind, decided, None, {"reason": self.kill.reason})
            res = e.flatten(decided) if kind == rp.FLATTEN else e.cancel_all(decided)
            self._journal_new(res, decided, {})
        self._dispatch(res)

    # ---------------------------------------------------------------- orders out

    def _dispatch(self, res: StepResult) -> None:
        self.router.dispatch(res.ended_orders, res.new_orders)

    # ---------------------------------------------------------------- fills in

    def _oid_of(self, ref: str) -> int | None:
        parsed = parse_ref(ref)
        if parsed is None or parsed[0] != self.run_id:
            return None
        assert self.engine is not None
        oid = parsed[1]
        return oid if 0 <= oid < self.engine.order_count() else None

    def _on_exec(self, rep: ExecReport, *, adopted: bool = False) -> None:
        if self.engine is None or self.journal is None:
            return
        oid = self._oid_of(rep.order_ref)
        if oid is None:
            if rep.symbol in self.symbols:
                log.warning("execution %s for %s is not from this run", rep.exec_id, rep.order_ref)
            return
        if self.fills.receive(rep, oid, adopted=adopted):
            self._wake.set()

    def on_execution(self, report: ExecReport) -> None:
        self._on_exec(report)

    def on_commission(self, exec_id: str, commission_micro: int) -> None:
        if self.journal is None or self.engine is None:
            return
        self.fills.commission(exec_id, commission_micro)

    # ---------------------------------------------------------------- order status

    def _end_from_broker(self, oid: int, state: str, detail: str) -> None:
        assert self.engine is not None and self.journal is not None
        if self.engine.orders.status[oid] == k.S_WORKING:
            info = {"oid": oid, "why": detail}
            self.journal.add_input(rp.END, None, None, info)
            rp.apply_input(self.engine, rp.END, None, None, info)
        if self.router.state.get(oid) not in jr.DONE_STATES:
            self.router.set_state(oid, state, detail)

    def on_order_status(self, report: OrderReport) -> None:
        if self.journal is None or self.engine is None:
            return
        oid = self._oid_of(report.order_ref)
        if oid is None:
            return
        j = self.journal
        with j.transaction():
            j.update_order(
                oid, self.server_ns, ib_order_id=report.ib_order_id,
                perm_id=report.perm_id or None,
            )  # fmt: skip
            state = self.router.state.get(oid)
            if report.status == "working":
                if state in (jr.INTENT, jr.SENT):
                    self.router.set_state(oid, jr.WORKING, report.ib_status)
            elif report.status == "cancelled":
                self._end_from_broker(oid, jr.CANCELLED, report.why or report.ib_status)
            else:
                j.order_event(oid, "ib_filled", f"{report.filled} filled", self.server_ns)
        self._wake.set()

    def on_order_error(self, order_ref: str, code: int, text: str) -> None:
        if self.journal is None or self.engine is None:
            return
        oid = self._oid_of(order_ref)
        if oid is None:
            return
        with self.journal.transaction():
            if code in REJECT_CODES_INFO:
                self.journal.order_event(oid, f"ib_{code}", text, self.server_ns)
                return
            log.error("order %s rejected: error %d %s", order_ref, code, text)
            self.stats.rejected += 1
            if self.router.state.get(oid) == jr.CANCELLED:  # ib_async marked it cancelled first
                self.router.state[oid] = jr.SENT
            self._end_from_broker(oid, jr.REJECTED, f"error {code}: {text}")
        self._wake.set()

    # ---------------------------------------------------------------- connection

    def on_connectivity(self, code: int, text: str) -> None:
        if code == CONNECTIVITY_LOST:
            if not self.conn.outage:
                self.stats.outages += 1
                log.warning("connectivity lost (1100): holding orders and minutes")
            self.conn.outage = True
            return
        log.warning(
            "connectivity restored (%d%s): resynchronising",
            code, ", data lost" if code == RESTORED_DATA_LOST else "",
        )  # fmt: skip
        self.conn.outage = False
        self._start_resync(f"restored {code}")

    def on_disconnected(self) -> None:
        if self._done or self.fatal:
            return
        self.conn.connected = False
        self.conn.resyncing = True
        log.warning("disconnected from %s:%d", self.settings.host, self.settings.port)
        self.sup.cancel("resync")
        self.sup.spawn("reconnect", self._reconnect, policy="retry", replace=False)

    async def _reconnect(self) -> None:
        """Reconnect until it works. A refused connection (TWS / IB Gateway restarting, the
        nightly reset) is retried within about a second and at most REFUSED_RETRY_MAX apart;
        other failures back off up to reconnect_max_seconds."""
        assert self.broker is not None
        b = self.cfg.broker
        delay = b.reconnect_initial_seconds
        refused_delay = min(b.reconnect_initial_seconds, REFUSED_RETRY_MAX)
        await asyncio.sleep(delay)
        while not self._done and not self.fatal and self.failure is None:
            try:
                await self.broker.connect(allow_fallback=False)
            except ConnectionRefused:
                log.warning(
                    "gateway refused the connection (nightly restart?), retrying in %.1f s",
                    refused_delay,
                )
                await asyncio.sleep(refused_delay)
                refused_delay = min(
                    max(refused_delay * 2, 0.25), REFUSED_RETRY_MAX, b.reconnect_max_seconds
                )
                continue
            except BrokerUnavailable as exc:
                log.warning("reconnect failed (%s); next try in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, b.reconnect_max_seconds)
                continue
            break
        if self._done or self.fatal or self.failure is not None:
            return
        self.conn.connected = True
        self.stats.reconnects += 1
        log.warning("reconnected as client %d", self.broker.client_id)
        self._start_resync("reconnect")

    def _start_resync(self, why: str) -> None:
        self.conn.resyncing = True
        self.sup.spawn("resync", lambda: self._resync(why), policy="retry")

    async def _resync(self, why: str) -> None:
        """Reconcile and resubscribe after a reconnect or a restore. A connection that drops
        meanwhile ends it (the reconnect starts another); one that stays up but fails a
        request is retried with backoff (the supervisor retries anything else)."""
        assert self.broker is not None and self.journal is not None
        delay = self.cfg.broker.reconnect_initial_seconds
        while True:
            try:
                self.broker.raise_order_id_floor(self.journal.max_ib_order_id() + 1)
                self.server_ns = max(self.server_ns, await self.broker.server_time_ns())
                if not await self._reconcile(why):
                    self._wake.set()
                    return
                await self._subscribe_all(self._catchup_duration())
            except (ConnectionError, TimeoutError, OSError, BrokerUnavailable) as exc:
                if not self.broker.connected:
                    log.warning("resync after %s failed (%s); waiting for the connection", why, exc)
                    return
                log.warning("resync after %s failed (%s); retrying in %.1f s", why, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.cfg.broker.reconnect_max_seconds)
                continue
            break
        self.conn.resyncing = False
        self.router.release_held()
        self._wake.set()
        self._kick_time()

    def _check_stale(self) -> None:
        e = self.engine
        if e is None or not e.started or not self.conn.can_trade:
            return
        if not (e.session_open_ns <= self.server_ns <= e.session_close_ns + NS_PER_MINUTE):
            return
        if self.server_ns - self._alive() > self.stale_ns:
            self.stats.stale_streams += 1
            log.warning(
                "no bar from any symbol since %s (server time %s): streams went silent; resubscribing",
                _ny(self._alive()), _ny(self.server_ns),
            )  # fmt: skip
            self.minutes.mark_alive(self.server_ns)
            self._start_resync("silent streams")

    # ================================================================ the end

    async def _finish(self, error: BaseException | None) -> None:
        await self.sup.close()
        self._done = True
        summary = None
        try:
            if self.engine is not None and self.engine.started and self.engine.sessions:
                summary = self._write_report()
            if self.journal is not None:
                state = "failed" if (error or self.fatal) else "finished"
                self.journal.set_many(
                    {"state": state, "stop_reason": self.stop_reason or self.fatal or ""}
                )
        finally:
            if self.broker is not None:
                with contextlib.suppress(Exception):
                    await self.broker.disconnect()
            if self.journal is not None:
                self.journal.close()
            self._close_folder()
        e = self.engine
        self._outcome = TradeOutcome(
            out_dir=self.run_dir,
            stop_reason=self.stop_reason or self.fatal,
            sessions=e.sessions_completed if e is not None else 0,
            orders=e.order_count() if e is not None else 0,
            fills=e.fill_count() if e is not None else 0,
            summary=summary,
        )

    def _write_report(self) -> dict[str, Any]:
        e = self.engine
        assert e is not None
        result = e.result()
        seconds = float(sum(self.stats.step_seconds))
        summary = write_results(self.cfg, result, self.run_dir, engine_seconds=seconds)
        run = summary["run"]
        run.update(
            kind=self.kind,
            run_id=self.run_id,
            account=self.account,
            broker=f"{self.settings.host}:{self.settings.port}",
            client_id=self.broker.client_id if self.broker else self.settings.client_id,
            journal=jr.JOURNAL_NAME,
            stop_reason=self.stop_reason or self.fatal,
            halted=self.halted,
            reconnects=self.stats.reconnects,
            outages=self.stats.outages,
            resubscribes=self.stats.resubscribes,
            adopted_executions=self.stats.adopted,
            resent_orders=self.stats.resent,
            rejected_orders=self.stats.rejected,
            blocked_symbols=[s for s, b in zip(self.symbols, self.blocked, strict=True) if b],
            step_ms_p50=_percentile_ms(self.stats.step_seconds, 50),
            step_ms_p99=_percentile_ms(self.stats.step_seconds, 99),
        )
        from momentumbot.reporting.metrics import to_jsonable

        rf.write_json(to_jsonable(summary), self.run_dir / "summary.json")
        log.info(
            "report written to %s: %d orders, %d fills",
            self.run_dir,
            len(result.orders),
            len(result.fills),
        )
        return summary


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds; whether it fired. (asyncio.wait_for on 3.11
    can swallow a cancellation that arrives as the event fires; asyncio.wait never does.)"""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return bool(done)


def _percentile_ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 3) if seconds else None


async def trade(cfg: AppConfig, opts: TradeOptions) -> TradeOutcome:
    """Run a trading session with the live console when stdout is a terminal."""
    console_on = opts.console and sys.stdout.isatty()
    if not console_on:
        return await Trader(cfg, opts).run()
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def sink(trader: Trader) -> None:
            live.update(status_table(trader), refresh=True)

        return await Trader(cfg, opts, status_sink=sink).run()

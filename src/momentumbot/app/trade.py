"""Composition of paper and live trading: config + broker + journal + the live engine + risk
-> the same run folder a backtest writes, plus the journal.

`Trader` opens the run folder, checks the config's guards, connects the broker, checks the
account, and makes one `trading.session.TradingSession` of every running piece; the pieces
themselves (minute stepping, order routing, fill booking, reconciliation, connection
supervision, warm-up) live in `momentumbot.trading`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot import __version__
from momentumbot.app.session_report import SessionReports, session_job
from momentumbot.app.trade_dashboard import open_dashboard
from momentumbot.app.trade_files import check_resume, write_trade_report
from momentumbot.config.loader import config_to_toml
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import ConfigError, MomentumbotError
from momentumbot.domain.units import NS
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker, BrokerListener, BrokerUnavailable
from momentumbot.execution.ib_broker import BrokerSettings, IbBroker, port_is_live
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.monitor.serve import Dashboard
from momentumbot.notify import Event, build_notifier
from momentumbot.reporting import run_folder as rf
from momentumbot.risk.kill_switch import KillSwitch
from momentumbot.risk.limits import RiskLimits
from momentumbot.trading import guards, terminal
from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.console import status_table
from momentumbot.trading.fatal_exit import cancel_working_orders
from momentumbot.trading.folder import RunFolder
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.relay import BrokerRelay
from momentumbot.trading.resync import ResyncGaveUp
from momentumbot.trading.run import RunState, RunStats, ny
from momentumbot.trading.session import SessionContext, TradingSession
from momentumbot.trading.streams import plan_streams
from momentumbot.trading.supervisor import Failure, Supervisor, TaskFailed, describe
from momentumbot.trading.terminal import EVENT

log = logging.getLogger("momentumbot.trade")

__all__ = [
    "TradeOptions", "TradeOutcome", "Trader", "TradingHalted", "TradingStopped", "status_table",
    "trade",
]  # fmt: skip


class TradingHalted(MomentumbotError):
    """The run ended at a session's close halted (the daily loss limit, refused sells, the
    reject breaker): a person should look before it trades again."""

    exit_code = 9


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
    session_reports: bool = True  # sessions/DAY/ and the run's report after each close
    log_level: str = "INFO"  # run.log's threshold
    terminal_events: bool = False  # the bot's events as one line each on the terminal (the CLI)


@dataclass
class TradeOutcome:
    out_dir: Path
    stop_reason: str
    sessions: int
    orders: int
    fills: int
    summary: dict[str, Any] | None


BrokerFactory = Callable[[BrokerListener], Broker]


class Trader:
    """One paper or live trading run in one run folder.

    `broker` makes the broker from the run's listener: IB through ib_async by default; tests
    pass `testing.fake_broker.FakeBroker`. The running pieces are made once, connected, in
    one `trading.session.TradingSession`."""

    def __init__(
        self,
        cfg: AppConfig,
        opts: TradeOptions,
        *,
        calendar: TradingCalendar | None = None,
        status_sink: Callable[[Trader], None] | None = None,
        broker: BrokerFactory | None = None,
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
        self.limits = RiskLimits.from_config(cfg.risk)
        b = cfg.broker
        self.settings = BrokerSettings.from_config(
            b, host=opts.host, port=opts.port, client_id=opts.client_id
        )
        self.minutes = MinuteAssembler(
            syms, int(b.bar_grace_seconds * NS), int(b.stale_stream_seconds * NS)
        )
        self.kill = KillSwitch(self.run_dir)
        self.conn = ConnectionState()
        self.state = RunState()
        self.status_sink = status_sink
        self.run_id = ""
        self.account = ""
        self.pdt_limited = False  # trading under the pattern-day-trader limit
        self.kind = "live" if opts.live else "paper"
        self.blocked = np.zeros(len(syms), bool)
        self.folder = RunFolder(self.run_dir, opts.log_level)
        self.journal: jr.Journal | None = None  # open while run() runs
        self.sup = Supervisor(
            self._record_failure,
            self._on_fatal,
            backoff_initial=b.reconnect_initial_seconds,
            backoff_max=b.reconnect_max_seconds,
        )
        self.failure: Failure | None = None
        self.relay = BrokerRelay(self.sup, self.conn)
        make = broker or (lambda listener: IbBroker(self.settings, listener))
        self.broker: Broker = make(self.relay)
        self.session: TradingSession | None = None  # once connected and the engine is made
        self.dashboard: Dashboard | None = None  # while trading, when [dashboard] enabled
        self.reports = SessionReports()  # each session's report, written off the loop
        self.notify = build_notifier(self.cfg)  # alerts (off without MOMENTUMBOT_NOTIFY_URLS)
        self._outcome: TradeOutcome | None = None
        self.remaining: list[str] = []  # what a fatal exit left at IB

    # ---------------------------------------------------------------- what others read

    @property
    def engine(self) -> LiveEngine | None:
        return self.session.engine if self.session is not None else None

    @property
    def stats(self) -> RunStats:
        return self.state.stats

    @property
    def halted(self) -> str:
        return self.state.halted or self.state.buys_halted

    @property
    def server_ns(self) -> int:
        return self.state.server_ns

    @property
    def progress_ns(self) -> int:
        return self.state.progress_ns

    @property
    def session_start_equity(self) -> float | None:
        """The equity the day's loss counts from (the console shows P&L today from it)."""
        return self.session.stepper.session_start_equity if self.session is not None else None

    def wake(self) -> None:
        """Let the minute loop look again now (a stop was asked for, a test moved time)."""
        self.state.wake.set()

    def kick_time(self) -> None:
        """Ask the server's time at the loop's next turn."""
        self.state.kick_time()

    # ================================================================ the run

    async def run(self) -> TradeOutcome:
        """Trade until the sessions are done, a stop is asked for, or something is wrong."""
        journal = self.journal = self.folder.open()
        self.kill.clear_file()
        loop = asyncio.get_running_loop()
        self.kill.install_signals(loop, self.wake)
        for warning in self.notify.warnings:
            log.warning("%s", warning)
        if self.notify.enabled:
            log.info("alerts to %s", ", ".join(t.label for t in self.notify.targets))
        error: BaseException | None = None
        try:
            session = await self._start(journal)
            if session is not None:
                await self._trade(session)
        except BaseException as exc:
            error = exc
            if not self.state.stop_reason:
                self.state.stop_reason = f"error: {exc}"
            raise
        finally:
            self.kill.remove_signals(loop)
            if error is None and self.failure is not None:
                error = self.failure.error
            self._outcome = await self._finish(journal, error)
        if self.failure is not None:
            raise TaskFailed(
                f"{describe(self.failure)}; the traceback is in {self.run_dir / 'run.log'}; "
                "run the same command to resume the run folder"
                + (f" ({self.state.fatal})" if self.state.fatal else "")
            )
        if self.state.fatal:
            raise TradingStopped(self.state.fatal)
        if self.state.gave_up:
            raise ResyncGaveUp(
                f"{self.state.gave_up}; run the same command to resume the run folder"
            )
        if self.state.ended_halted:
            raise TradingHalted(
                f"the session ended halted ({self.state.ended_halted}); the positions are flat "
                f"and the report is in {self.run_dir}. Check the account at IB, then run the same "
                "command with --rearm to trade again"
            )
        return self._outcome

    async def _trade(self, session: TradingSession) -> None:
        dashboard = self.dashboard = await open_dashboard(self, session)
        try:
            await session.loop(failed=lambda: self.failure is not None)
        except (MomentumbotError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # the minute loop itself failed: its engine may be ahead of the journal, so
            # no flatten from it; the restart resumes from the journal
            self.sup.report("minutes", "fatal", exc)
        finally:
            if dashboard is not None:
                await dashboard.close()
                self.dashboard = None
        if self.failure is None:
            await session.settle_commissions()

    # ---------------------------------------------------------------- failures

    def _record_failure(self, failure: Failure) -> None:
        """Every failed task is journaled (table `errors`) as well as logged."""
        if self.journal is not None:
            self.journal.add_error(
                failure.task, failure.policy, failure.message, failure.traceback, self.server_ns
            )

    def _on_fatal(self, failure: Failure) -> None:
        self.failure = failure
        self.state.failed = True
        self.kill.trip(describe(failure))
        self.wake()

    # ---------------------------------------------------------------- start

    async def _start(self, j: jr.Journal) -> TradingSession | None:
        """Connect, check the account, make the engine and the session, and start it; None
        if reconciliation stopped trading (`state.fatal` says why)."""
        guards.check_config(
            self.cfg.broker, self.limits, live=self.opts.live,
            live_port=port_is_live(self.settings.port),
        )  # fmt: skip
        realtime = plan_streams(
            self.symbols,
            self.cfg.broker,
            quote_lines=self.cfg.broker.order_type == "marketable_limit",
        )
        guards.check_account_config(self.cfg, live=self.opts.live)
        resume = not j.is_new
        if resume:
            self.run_id = check_resume(j, self.cfg, self.symbols, self.kind, self.run_dir)
        else:
            self.run_id = uuid.uuid4().hex[:8]
            j.set_many(
                {
                    "run_id": self.run_id, "kind": self.kind, "version": __version__,
                    "config": config_to_toml(self.cfg), "symbols": json.dumps(self.symbols),
                    "state": "starting",
                }
            )  # fmt: skip
            rf.write_config(self.cfg, self.run_dir / "config.toml")
        rearmed = bool(self.opts.rearm and (j.get("halted") or j.get("buys_halted")))
        if rearmed:
            log.warning(
                "re-armed: the halt (%s) is lifted", j.get("halted") or j.get("buys_halted")
            )
            with j.transaction():
                j.set_many({"halted": "", "buys_halted": ""})
                j.add_input(rp.NOTE, None, None, {"rearm": True})
        self.state.halted = j.get("halted") or ""
        self.state.buys_halted = j.get("buys_halted") or ""
        self.state.paused = j.get("paused") or ""
        self.notify.context = f"momentumbot {self.kind} {self.run_id}"
        self.state.alerts = self.notify  # halts from here on are sent
        j.set_many({"state": "starting", "pid": str(os.getpid())})
        working = resume and any(o.state not in jr.DONE_STATES for o in j.orders().values())
        s = self.settings
        log.info(
            "%s run %s: connecting to %s:%d as client %d",
            self.kind, self.run_id, s.host, s.port, s.client_id, extra=EVENT,
        )  # fmt: skip
        await self.broker.connect(allow_fallback=not working)
        self.conn.connected = True
        self._guard_account(j)
        await self.broker.qualify(self.symbols)
        await self._check_market_data()
        session = self.session = TradingSession(
            SessionContext(
                cfg=self.cfg, broker=self.broker, journal=j,
                engine=LiveEngine(self.cfg, self.symbols, self.calendar),
                calendar=self.calendar, minutes=self.minutes, conn=self.conn, run=self.state,
                sup=self.sup, kill=self.kill, blocked=self.blocked,
                run_id=self.run_id, account=self.account, sessions=self.opts.sessions,
                where=f"{s.host}:{s.port}", after_steps=self._show,
                session_done=self._session_done,
                realtime=frozenset(realtime),
                pdt_limited=self.pdt_limited,
            )
        )  # fmt: skip
        self.relay.session = session
        if not await session.start(rearmed=rearmed):
            return None
        j.set_many({"state": "trading"})
        self.notify.event(
            Event.RUN_STARTED, "run started",
            f"{self.kind}, {len(self.symbols)} symbols, server time {ny(self.server_ns)}"
            + (f"; halted: {self.halted}" if self.halted else ""),
        )  # fmt: skip
        log.info(
            "trading %d symbols (%s) on %s, server time %s",
            len(self.symbols), ", ".join(self.symbols), self.account, ny(self.server_ns),
            extra=EVENT,
        )  # fmt: skip
        return session

    def _guard_account(self, j: jr.Journal) -> None:
        stored = j.get("account")
        account = guards.choose_account(
            self.broker.managed_accounts(), self.cfg.broker.account, live=self.opts.live,
            stored=stored, run_dir=self.run_dir, is_paper=self.broker.account_is_paper,
        )  # fmt: skip
        if not stored:
            j.set_many({"account": account})
        self.account = account
        self.broker.account = account
        self.pdt_limited = guards.check_account_type(
            self.cfg, self.broker.account_status(), account
        )

    async def _check_market_data(self) -> None:
        b = self.cfg.broker
        if b.allow_delayed_data and b.order_type != "marketable_limit":
            return
        problems = await self.broker.market_data_problems(
            self.symbols, self.opts.market_data_wait_seconds,
            keep=b.order_type == "marketable_limit",
        )  # fmt: skip
        if not b.allow_delayed_data:
            for sym, why in problems.items():
                self.blocked[self.minutes.index[sym]] = True
                log.warning("%s: %s; no new buys (allow_delayed_data = false)", sym, why)

    def _session_done(self, day: pd.Timestamp) -> None:
        """After a session's close: its report (sessions/DAY/) and the run's report to date,
        from the engine's tables taken now, written in a worker thread."""
        e = self.engine
        if e is None or not self.opts.session_reports:
            return
        job = session_job(
            self.cfg, e, self.run_dir, day, self._report_facts(), self.notify,
            refresh=not self.state.done,  # when the run ends here, its final report follows
        )  # fmt: skip
        self.reports.start(job, f"the report of session {day.date()}")

    def _report_facts(self) -> dict[str, Any]:
        """What summary.json says of the run besides the engine's tables (a copy)."""
        return {
            "stats": copy.deepcopy(self.stats), "kind": self.kind, "run_id": self.run_id,
            "account": self.account, "broker": f"{self.settings.host}:{self.settings.port}",
            "client_id": self.broker.client_id,
            "stop_reason": self.state.stop_reason or self.state.fatal,
            "halted": self.halted, "blocked": self.blocked.copy(), "symbols": self.symbols,
        }  # fmt: skip

    def _show(self) -> None:
        if self.status_sink is not None:
            self.status_sink(self)

    # ================================================================ the end

    async def _finish(self, j: jr.Journal, error: BaseException | None) -> TradeOutcome:
        await self.sup.close()
        self.state.done = True
        if self.session is not None and self._fatal_exit(error):
            await self._cancel_on_fatal()
        e = self.engine
        summary = None
        stop_reason = self.state.stop_reason or self.state.fatal
        try:
            await self.reports.drain()  # a session's report must not race the final one
            if e is not None and e.started and e.sessions:
                summary = write_trade_report(self.cfg, e, self.run_dir, **self._report_facts())
            state = "failed" if (error or self.state.fatal or self.state.gave_up) else "finished"
            j.set_many({"state": state, "stop_reason": stop_reason or ""})
        finally:
            with contextlib.suppress(Exception):
                await self.broker.disconnect()
            with contextlib.suppress(Exception):  # an alert never fails the stop
                self.notify.event(
                    Event.RUN_STOPPED, "run stopped", stopped_text(stop_reason, e, summary)
                )
                await self.notify.aclose()  # what is queued; a hanging target costs a timeout
            j.close()
            self.journal = None
            self.folder.close()
        return TradeOutcome(
            out_dir=self.run_dir,
            stop_reason=stop_reason,
            sessions=e.sessions_completed if e is not None else 0,
            orders=e.order_count() if e is not None else 0,
            fills=e.fill_count() if e is not None else 0,
            summary=summary,
        )

    def _fatal_exit(self, error: BaseException | None) -> bool:
        """A reconciliation mismatch, a failed task, a resync given up or a crash (not a stop,
        a config error, an unreachable broker or a cancellation)."""
        if self.state.fatal or self.failure is not None or self.state.gave_up:
            return True
        quiet = (asyncio.CancelledError, KeyboardInterrupt, ConfigError, BrokerUnavailable)
        return error is not None and not isinstance(error, quiet)

    async def _cancel_on_fatal(self) -> None:
        """Cancel the run's working orders at IB (unless keep_orders_on_fatal) and say what
        remains, in the log and on the console."""
        self.remaining = await cancel_working_orders(
            self.broker, self.run_id, self.symbols, keep=self.cfg.broker.keep_orders_on_fatal
        )
        if not self.remaining:
            log.warning("fatal exit: no order of this run is working at IB, no position left")
            return
        log.error("fatal exit: what remains at IB:")
        for line in self.remaining:
            log.error("  %s", line)
        print("what remains at IB after the fatal exit:", file=sys.stderr)
        for line in self.remaining:
            print(f"  {line}", file=sys.stderr)


def stopped_text(reason: str, engine: LiveEngine | None, summary: dict[str, Any] | None) -> str:
    """The run-stopped alert's text: why, what it did, the equity."""
    text = f"stopped: {reason or 'done'}"
    if engine is not None:
        text += (
            f"; {engine.sessions_completed} sessions, {engine.order_count()} orders, "
            f"{engine.fill_count()} fills"
        )
    if summary and summary.get("final_equity") is not None:
        text += f"; equity {summary['final_equity']:,.2f} USD"
        if summary.get("total_return") is not None:
            text += f" ({summary['total_return'] * 100:+.2f} %)"
    return text


async def trade(cfg: AppConfig, opts: TradeOptions) -> TradeOutcome:
    """Run a trading session with the live console when stdout is a terminal; with
    `terminal_events` the bot's events print one line each (above the table when it is on)."""
    console_on = opts.console and sys.stdout.isatty()
    if not console_on:
        shown = terminal.attach() if opts.terminal_events else None
        try:
            return await Trader(cfg, opts).run()
        finally:
            if shown is not None:
                terminal.detach(shown)
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as live:

        def sink(trader: Trader) -> None:
            live.update(status_table(trader), refresh=True)

        shown = (
            terminal.attach(lambda line: live.console.print(line, markup=False, highlight=False))
            if opts.terminal_events
            else None
        )
        try:
            return await Trader(cfg, opts, status_sink=sink).run()
        finally:
            if shown is not None:
                terminal.detach(shown)

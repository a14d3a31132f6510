"""One connected trading session: every running piece, built together once what they need
is there (the broker connected to its account, the engine made, the journal open), so none of
them is ever half made. It answers the broker's events, starts (replay, reconcile, warm-up or
resubscribe) and runs the minute loop until the run is done or a stop is asked for."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.risk.kill_switch import KillSwitch
from momentumbot.trading.booking import FillBook
from momentumbot.trading.connection import ConnectionState, ConnectionSupervisor
from momentumbot.trading.day_trades import DayTradeWatch
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.order_events import OrderEvents
from momentumbot.trading.reconciling import Reconciler
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState, ny
from momentumbot.trading.sell_retry import SellRetry
from momentumbot.trading.stepping import Stepper
from momentumbot.trading.streams import StreamHealth
from momentumbot.trading.supervisor import Supervisor
from momentumbot.trading.warmup import MarketFeed, catchup_duration, check_calendar_covers

log = logging.getLogger("momentumbot.trade")


@dataclass(frozen=True)
class SessionContext:
    """What a session is made from (all of it known once the broker is connected)."""

    cfg: AppConfig
    broker: Broker
    journal: jr.Journal
    engine: LiveEngine
    calendar: TradingCalendar
    minutes: MinuteAssembler
    conn: ConnectionState
    run: RunState
    sup: Supervisor
    kill: KillSwitch
    blocked: np.ndarray
    run_id: str
    account: str
    sessions: int | None
    where: str  # host:port, for the log
    after_steps: Callable[[], None]
    realtime: frozenset[str] = frozenset()  # symbols fed by 5-second bars (`trading.streams`)
    session_done: Callable[[pd.Timestamp], None] = lambda day: None  # the session's report
    pdt_limited: bool = False  # a margin account under the day-trade limit (allow_pdt_limited)


class TradingSession:
    """The pieces of a connected run; see the module docstring."""

    def __init__(self, ctx: SessionContext) -> None:
        c = ctx
        self.ctx = c
        self.cfg, self.broker, self.journal, self.engine = c.cfg, c.broker, c.journal, c.engine
        self.run, self.conn, self.kill = c.run, c.conn, c.kill
        run = c.run
        self.router = OrderRouter(
            journal=c.journal, broker=c.broker, engine=c.engine, run_id=c.run_id,
            cfg=c.cfg.broker, now_ns=lambda: run.server_ns,
            can_trade=lambda: c.conn.can_trade, describe_connection=c.conn.describe,
        )  # fmt: skip
        self.fills = FillBook(c.journal, c.engine, self.router, now_ns=lambda: run.server_ns)
        self.events = OrderEvents(c.journal, c.engine, self.router, self.fills, run, c.run_id)
        self.reconciler = Reconciler(
            c.broker, c.journal, c.engine, self.router, self.fills, self.events, run, c.cfg,
            c.run_id, c.account,
        )  # fmt: skip
        self.feed = MarketFeed(
            c.broker, c.journal, c.engine, c.calendar, c.minutes, run, on_bar=self._guard_bars
        )
        self.feed.realtime = set(c.realtime)
        self.health = StreamHealth(
            c.engine, c.minutes, c.cfg.broker, c.conn, run, c.sup, c.blocked,
            resubscribe=self.feed.resubscribe_one,
        )  # fmt: skip
        self.connection = ConnectionSupervisor(
            broker=c.broker, journal=c.journal, engine=c.engine, cfg=c.cfg.broker, conn=c.conn,
            run=run, sup=c.sup, minutes=c.minutes, router=self.router,
            reconcile=lambda why: self.reconciler.run_once(why),
            resubscribe=self.feed.resubscribe_some, where=c.where,
            n_symbols=len(c.engine.symbols),
        )  # fmt: skip
        self.day_trades = DayTradeWatch(c.broker, c.engine, c.journal, run, c.pdt_limited)
        self.stepper = Stepper(
            engine=c.engine, journal=c.journal, router=self.router, fills=self.fills,
            minutes=c.minutes, conn=c.conn, run=run, cfg=c.cfg,
            blocked=c.blocked, run_id=c.run_id, sessions=c.sessions,
            catchup_until=lambda: self.feed.catchup_until, after_steps=self._after_steps,
            session_done=c.session_done,
            buy_room=self.day_trades.check,
        )  # fmt: skip
        self.retry = SellRetry(
            engine=c.engine, journal=c.journal, router=self.router, run=run, cfg=c.cfg.broker,
            journal_new=self.stepper.journal_new,
        )  # fmt: skip
        self.events.retry = self.retry

    def _after_steps(self) -> None:
        self.health.after_steps()
        self.retry.tick()
        if not self.run.time_wanted:  # a step that sent nothing: tell the server it is dealt
            self.feed.ask_time_capped()  # with (a lockstep replay goes on when it has)
        self.ctx.after_steps()

    def _guard_bars(self, fn: Callable[..., None]) -> Callable[..., None]:
        return self.ctx.sup.guard(
            "streams", fn, policy="retry",
            on_retry=lambda: self.connection.start_resync("a bar stream callback failed"),
        )  # fmt: skip

    # ================================================================ start

    async def start(self, *, rearmed: bool) -> bool:
        """Replay the journal, reconcile, warm up or resubscribe; False if reconciliation
        stopped trading (`run.fatal` says why)."""
        e, j, run = self.engine, self.journal, self.run
        if not j.is_new:
            stats = rp.replay(j, e)
            self.fills.fill_index = dict(stats.fill_index)
            log.info(
                "journal replayed: %d inputs, %d minutes, %d fills; next minute %s",
                stats.inputs, stats.steps, stats.fills, ny(e.next_label) if e.started else "-",
            )  # fmt: skip
        if rearmed and e.started and e.sessions:
            # the loss so far is accepted: the day's loss counts from here
            j.set_many({"loss_reference": f"{e.sessions[-1].date()}|{e.equity()!r}"})
        self.router.state = {oid: o.state for oid, o in j.orders().items()}
        self.fills.requeue_unbooked(self.ctx.account)
        self.broker.raise_order_id_floor(j.max_ib_order_id() + 1)
        run.see_server_time(await self.broker.server_time_ns())
        check_calendar_covers(self.ctx.calendar, run.server_ns, self.ctx.sessions or 5)
        if not await self.reconciler.run_once("start"):
            return False
        if not e.started:
            await self.feed.warm_up()
        else:
            await self.feed.subscribe_all(
                catchup_duration(self.ctx.calendar, e.next_label, run.server_ns)
            )
        self.conn.resyncing = False
        return True

    # ================================================================ the loop

    async def loop(self, *, failed: Callable[[], bool]) -> None:
        """Step what is complete; ask the server's time when a minute waits for it, after
        every step (the answer also proves the gateway has read our orders), and every poll
        interval; stop when asked (`failed()`: a task failed, so the stop flattens)."""
        run = self.run
        stop_deadline = 0.0
        poll = self.cfg.broker.server_time_poll_seconds
        while True:
            # a stop is dealt with before the next step: no decision after it was asked for
            if (self.kill.check_file() or self.kill.tripped) and not run.stopping:
                run.stopping = True
                run.stop_reason = self.kill.reason
                log.warning("stopping: %s", self.kill.reason)
                if failed():
                    await self.emergency_flatten()
                else:
                    self.stepper.stop_trading(
                        self.kill.reason, flatten=self.cfg.risk.flatten_on_stop
                    )
                stop_deadline = time.monotonic() + self.cfg.risk.stop_wait_seconds
            self.stepper.try_step()
            if run.fatal or run.done:
                break
            if run.stopping and (self._stop_settled(failed()) or time.monotonic() > stop_deadline):
                if not self._stop_settled(failed()):
                    log.warning(
                        "stop: the flatten has not filled within %g s; its orders stay at IB",
                        self.cfg.risk.stop_wait_seconds,
                    )
                if self.router.held:
                    log.warning(
                        "stop: %d orders were held (%s) and never sent; positions stay at IB: %s",
                        len(self.router.held), self.conn.describe(),
                        self.engine.positions() or "none",
                    )  # fmt: skip
                break
            if run.time_wanted and self.conn.connected:
                run.time_wanted = False
                await self.sync_time()
                continue
            run.wake.clear()
            if not await wait_event(run.wake, poll):
                run.time_wanted = True

    def _stop_settled(self, failed: bool) -> bool:
        return self.stepper.stop_settled(flatten=self.cfg.risk.flatten_on_stop or failed)

    async def sync_time(self) -> None:
        """One server-time round trip; then progress = the minute the bot has dealt with."""
        seq = self.run.step_seq
        if not await self.connection.server_time():
            return
        e = self.engine
        if seq == self.run.step_seq and e.started and self.conn.can_trade:
            self.stepper.set_progress(e.next_label)
        self.router.limits_to_market()
        self.retry.tick()
        try:
            self.connection.check_stale()
            self.health.check()
        except Exception as exc:
            self.ctx.sup.report("stale-watch", "retry", exc)  # the next poll tries again

    async def settle_commissions(self, timeout: float = 5.0) -> None:
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

    async def emergency_flatten(self) -> None:
        """A task failed and left the books in doubt: flatten if the broker agrees with the
        books, else leave everything as it is (the restart's reconciliation sorts it out)."""
        if not self.engine.started or not self.conn.can_trade:
            log.error("not flattening after the failure: not connected or not started")
            return
        try:
            agrees = await self.reconciler.run_once("before the emergency flatten")
        except Exception as exc:
            log.error("not flattening after the failure: reconciliation failed (%s)", exc)
            return
        if not agrees:
            return
        log.error("flattening every position after the failure")
        self.stepper.stop_trading(self.kill.reason, flatten=True)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
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

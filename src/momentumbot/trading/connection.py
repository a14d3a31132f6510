"""Connection supervision: what the trader knows about the link, and what it does when the
link changes. Connectivity lost (1100, or 2110 between TWS and IB's servers): orders and minutes
are held. Restored, or reconnected after a drop (1300 too): reconcile with the broker and
resubscribe the streams, then release what was held; a resync that fails retries with backoff,
trades the symbols that resubscribed and gives up after `resync_give_up_minutes`
(`trading.resync`). Streams that went silent in a session, or a server that stops answering
time requests, are treated as a broken link too.

The reconnect and the resync run as supervised tasks (`trading.supervisor`, policy retry)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import NS, NS_PER_MINUTE
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker, BrokerUnavailable, ConnectionRefused
from momentumbot.journal import journal as jr
from momentumbot.notify import Event
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.resync import EVERY_SYMBOL, RETRY_MAX_SECONDS, Degraded
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState, ny
from momentumbot.trading.supervisor import Supervisor

log = logging.getLogger("momentumbot.trade")

TIME_FAILURES_BEFORE_RECONNECT = 2  # unanswered server-time requests in a row, connected
REFUSED_RETRY_MAX = 3.0
# what a resync meets from IB (a farm down, a timeout, a dropped link): retried, not reported
MARKET_EVENTS = (
    ConnectionError,
    TimeoutError,
    OSError,
    BrokerUnavailable,
    DataError,
)  # seconds between tries while the port refuses connections


@dataclass
class ConnectionState:
    """What the trader knows about the link, for holding orders and stepping minutes."""

    connected: bool = False
    outage: bool = False  # connectivity lost, not restored yet
    resyncing: bool = True

    @property
    def can_trade(self) -> bool:
        return self.connected and not self.outage and not self.resyncing

    def describe(self) -> str:
        if not self.connected:
            return "disconnected"
        if self.outage:
            return "connectivity lost (1100 / 2110): orders held"
        if self.resyncing:
            return "resynchronising"
        return "connected"


@dataclass
class ConnectionSupervisor:
    """Reconnect, resync, staleness and server-time failures; see the module docstring.

    `reconcile(why)` compares with the broker (False: a mismatch stopped trading) and
    `resubscribe(symbols)` renews the bar streams of `symbols` (None: every one), returning
    the symbols that failed with why; both belong to the session."""

    broker: Broker
    journal: jr.Journal
    engine: LiveEngine
    cfg: BrokerConfig
    conn: ConnectionState
    run: RunState
    sup: Supervisor
    minutes: MinuteAssembler
    router: OrderRouter
    reconcile: Callable[[str], Awaitable[bool]]
    resubscribe: Callable[[list[str] | None], Awaitable[dict[str, str]]]
    where: str  # host:port, for the log
    n_symbols: int = 0
    time_failures: int = 0
    degraded: Degraded = field(init=False)

    def __post_init__(self) -> None:
        self.degraded = Degraded(self.cfg.resync_give_up_minutes * 60)

    # ---------------------------------------------------------------- broker events

    def on_connectivity_lost(self) -> None:
        if not self.conn.outage:
            self.run.stats.outages += 1
            log.warning("connectivity lost (1100 / 2110): holding orders and minutes")
        self.conn.outage = True
        self.run.alerts.link_lost("connectivity lost (1100)")

    def on_connectivity_restored(self, *, data_lost: bool) -> None:
        log.warning(
            "connectivity restored (%d%s): resynchronising",
            1101 if data_lost else 1102, ", data lost" if data_lost else "",
        )  # fmt: skip
        self.conn.outage = False
        self.run.alerts.link_back(f"{1101 if data_lost else 1102}")
        self.start_resync(f"restored {1101 if data_lost else 1102}")

    def on_disconnected(self) -> None:
        if self.run.done or self.run.fatal:
            return
        self.conn.connected = False
        self.conn.resyncing = True
        log.warning("disconnected from %s", self.where)
        self.run.alerts.link_lost("disconnected from TWS / IB Gateway")
        self.sup.cancel("resync")
        self.sup.spawn("reconnect", self.reconnect, policy="retry", replace=False)

    # ---------------------------------------------------------------- reconnect

    def _gave_up(self) -> bool:
        return self.run.done or bool(self.run.fatal) or self.run.failed

    async def reconnect(self) -> None:
        """Reconnect until it works. A refused connection (TWS / IB Gateway restarting, the
        nightly reset) is retried within about a second and at most REFUSED_RETRY_MAX apart;
        other failures back off up to reconnect_max_seconds."""
        b = self.cfg
        delay = b.reconnect_initial_seconds
        refused_delay = min(b.reconnect_initial_seconds, REFUSED_RETRY_MAX)
        await asyncio.sleep(delay)
        while not self._gave_up():
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
        if self._gave_up():
            return
        self.conn.connected = True
        self.run.stats.reconnects += 1
        log.warning("reconnected as client %d", self.broker.client_id)
        self.run.alerts.link_back("reconnected")
        self.start_resync("reconnect")

    # ---------------------------------------------------------------- resync

    def start_resync(self, why: str) -> None:
        self.conn.resyncing = True
        self.sup.spawn("resync", lambda: self.resync(why), policy="retry")

    async def resync(self, why: str) -> None:
        """Reconcile and resubscribe after a reconnect or a restore; never parks (see
        `trading.resync`). A connection that drops meanwhile ends it (the reconnect starts
        another); any failure on one that stays up is retried with backoff: the whole resync
        while nothing has resubscribed, then only the symbols that failed, trading the rest."""
        delay = self.cfg.reconnect_initial_seconds
        todo: list[str] | None = None  # None: reconcile, then every symbol
        while not self.run.ended:
            try:
                failed = await self._resync_once(why, todo)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, MARKET_EVENTS):  # a bug, not IB: report it as one
                    self.sup.report("resync", "retry", exc)
                if not self.broker.connected:
                    log.warning("resync after %s failed (%s); waiting for the connection", why, exc)
                    return
                failed = {EVERY_SYMBOL: f"{type(exc).__name__}: {exc}"}
            if failed is None:  # reconciliation stopped trading
                self.run.wake.set()
                return
            if EVERY_SYMBOL not in failed:
                todo = sorted(failed)
                if len(failed) < self.n_symbols and self.conn.resyncing:
                    self._resume_trading()
            if not failed:
                self.degraded.clear()
                return
            self.degraded.note(why, failed, self.n_symbols)
            self.run.alerts.event(
                Event.RESYNC_DEGRADED, "resync degraded",
                self.degraded.describe(self.n_symbols), key="resync degraded",
            )  # fmt: skip
            if self.degraded.overdue:
                self.give_up(why)
                return
            log.warning("resync after %s: retrying in %.1f s", why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.cfg.reconnect_max_seconds, RETRY_MAX_SECONDS)

    async def _resync_once(self, why: str, todo: list[str] | None) -> dict[str, str] | None:
        """One try: the symbols that failed (None if reconciliation stopped trading)."""
        if todo is None:
            self.broker.raise_order_id_floor(self.journal.max_ib_order_id() + 1)
            self.run.see_server_time(await self.broker.server_time_ns())
            if not await self.reconcile(why):
                return None
        return await self.resubscribe(todo)

    def _resume_trading(self) -> None:
        self.conn.resyncing = False
        self.router.release_held()
        self.run.kick_time()

    def give_up(self, why: str) -> None:
        """Degraded too long: stop the run (exit code 8, `ResyncGaveUp`); no new orders."""
        reason = (
            f"could not resynchronise with the broker after {why} within "
            f"{self.cfg.resync_give_up_minutes:g} min ({self.degraded.describe(self.n_symbols)})"
        )
        log.error("giving up: %s; exiting with code 8 for a supervisor to restart the bot", reason)
        self.run.gave_up = reason
        self.run.stop_reason = self.run.stop_reason or reason
        self.run.done = True
        self.run.wake.set()

    # ---------------------------------------------------------------- watches

    def check_stale(self) -> None:
        """No bar from any symbol for stale_stream_seconds in a session: resubscribe."""
        e, run = self.engine, self.run
        if not e.started or not self.conn.can_trade:
            return
        if not (e.session_open_ns <= run.server_ns <= e.session_close_ns + NS_PER_MINUTE):
            return
        alive = self.minutes.alive(run.server_ns, e.session_open_ns)
        if run.server_ns - alive > int(self.cfg.stale_stream_seconds * NS):
            run.stats.stale_streams += 1
            log.warning(
                "no bar from any symbol since %s (server time %s): streams went silent; resubscribing",
                ny(alive), ny(run.server_ns),
            )  # fmt: skip
            self.minutes.mark_alive(run.server_ns)
            self.start_resync("silent streams")

    async def server_time(self) -> bool:
        """One server-time request; whether it was answered. Unanswered ones in a row on a
        connection that stays up drop it, so the reconnect starts over."""
        try:
            t = await self.broker.server_time_ns()
        except (ConnectionError, TimeoutError, OSError) as exc:
            self.time_failures += 1
            if not self.broker.connected:
                return False  # the reconnect deals with it
            log.warning(
                "the gateway did not answer a server-time request (%s; %d in a row)",
                exc, self.time_failures,
            )  # fmt: skip
            if self.time_failures >= TIME_FAILURES_BEFORE_RECONNECT:
                log.error("the gateway stopped answering: dropping the connection to reconnect")
                self.time_failures = 0
                self.broker.drop()
            return False
        self.time_failures = 0
        self.run.see_server_time(t)
        return True

"""The market data side of a run: the calendar checks at start, the warm-up (history of the
warm-up sessions and today's bars so far, journaled as one input), and the bar streams,
(re)subscribed with several requests in flight, whose bars go to the minute assembly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import BarArrays, Broker, OnBar, StreamBar
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.run import RunState, ny

log = logging.getLogger("momentumbot.trade")

SUBSCRIPTIONS_IN_FLIGHT = 16
TIME_KICK_SECONDS = 0.05  # at most 20 bar-triggered time requests a second (ib_async: 45)


def check_calendar_covers(calendar: TradingCalendar, server_ns: int, need: int) -> None:
    """Past the calendar's last date is a clear error at start, not a traceback hours later."""
    now = calendar.session_at_or_after(server_ns)
    last = calendar.last_session
    left = 0 if now is None else len(calendar.sessions(now, last))
    if left < need:
        raise DataError(
            f"the {calendar.name} calendar knows sessions only up to {last.date()} "
            f"(server time {ny(server_ns)}); this run needs {need} more: upgrade "
            "exchange_calendars (`pip install -U exchange_calendars`)"
        )


def first_session(calendar: TradingCalendar, server_ns: int) -> pd.Timestamp:
    """The session being traded now, or the next one."""
    s = calendar.session_at_or_after(server_ns)
    if s is None:
        raise DataError(
            f"the {calendar.name} calendar has no session after {ny(server_ns)} "
            f"(it ends {calendar.last_session.date()}); upgrade exchange_calendars"
        )
    return s


def closed_only(bars: BarArrays, server_ns: int) -> BarArrays:
    """The bars whose minute has closed by `server_ns` (drops a forming last bar)."""
    n = int(np.searchsorted(bars.ts, server_ns - NS_PER_MINUTE, side="right"))
    if n == bars.ts.shape[0]:
        return bars
    return BarArrays(
        bars.ts[:n], bars.open[:n], bars.high[:n], bars.low[:n], bars.close[:n], bars.volume[:n]
    )


def catchup_duration(calendar: TradingCalendar, next_label: int, server_ns: int) -> str:
    """History to ask for on a resubscribe: every session from the engine's next minute to
    now, plus the one before. The extra session keeps the answer from being empty (IB answers
    an empty range with error 162 and no stream): in the first seconds of a session, before
    its first bar closed, "1 D" holds no bar at all. Its bars are older than the engine's
    next minute and are dropped."""
    day = pd.Timestamp(next_label, tz="UTC").tz_convert(EXCHANGE_TZ)
    n = len(calendar.sessions_opened(day.tz_localize(None).normalize(), server_ns))
    return f"{n + 1} D"


@dataclass
class MarketFeed:
    """Warm-up and bar streams of one run; see the module docstring."""

    broker: Broker
    journal: jr.Journal
    engine: LiveEngine
    calendar: TradingCalendar
    minutes: MinuteAssembler
    run: RunState
    on_bar: Callable[[OnBar], OnBar]  # wraps the stream callback (the supervisor's guard)
    catchup_until: int = 0  # fresh start mid-session: minutes closing by then are not traded
    realtime: set[str] = field(default_factory=set)  # fed by 5-second bars (`trading.streams`)
    _last_kick: float = field(default=0.0, init=False)
    _kick_pending: bool = field(default=False, init=False)
    _kick_label: int = field(default=-1, init=False)  # the newest bar label a kick was for
    _deferred_at_ns: int = field(default=0, init=False)  # server time when a kick was deferred

    @property
    def symbols(self) -> list[str]:
        return list(self.engine.symbols)

    async def resubscribe(self) -> dict[str, BarArrays]:
        """Every stream again, with the history since the engine's next minute."""
        return await self.subscribe_all(
            catchup_duration(self.calendar, self.engine.next_label, self.run.server_ns)
        )

    async def warm_up(self) -> None:
        """History for the warm-up sessions (plus one before, to know which symbols have
        older bars) and today's bars so far, kept up to date from then on."""
        e, cal = self.engine, self.calendar
        first = first_session(cal, self.run.server_ns)
        warm = e.warmup_sessions(first)
        grid = e.warmup_grid(first)
        before = cal.sessions_before(warm[0] if len(warm) else first, 1)
        start_day = before[0] if len(before) else (warm[0] if len(warm) else first)
        n_days = len(cal.sessions_opened(start_day, self.run.server_ns))
        log.info(
            "warming up from %s: %d warm-up sessions before %s, %d days of history",
            start_day.date(), len(warm), first.date(), n_days,
        )  # fmt: skip
        e.preload_compiled()  # before the streams start: no silent first step or fill later
        history = await self.subscribe_all(f"{max(n_days, 1)} D")
        n = len(self.symbols)
        m = grid.n_minutes
        o, c, v = (np.full((m, n), np.nan) for _ in range(3))
        started = np.zeros(n, bool)
        first_label = int(grid.label_ns[0]) if m else e.next_label
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
            rp.apply_input(e, rp.WARMUP, None, data, info)
            self.journal.set("first_session", str(first.date()))
        self.catchup_until = self.run.server_ns
        self.minutes.drop_before(e.next_label)
        if self.run.server_ns > e.session_open_ns:
            log.warning(
                "started during the session (%s): minutes before it are replayed for bands, "
                "shadow books and quiet volume; their orders are not sent",
                ny(self.run.server_ns),
            )

    async def resubscribe_some(self, symbols: list[str] | None) -> dict[str, str]:
        """The streams of `symbols` (None: every one) again, with the history since the
        engine's next minute; the symbols whose request failed, with why (the resync retries
        them: any error, IB's 162 or a timeout while its data farm is down)."""
        failed: dict[str, str] = {}
        duration = catchup_duration(self.calendar, self.engine.next_label, self.run.server_ns)
        await self.subscribe_all(duration, symbols, failed)
        return failed

    async def subscribe_all(
        self,
        duration: str,
        symbols: list[str] | None = None,
        failed: dict[str, str] | None = None,
    ) -> dict[str, BarArrays]:
        """(Re)subscribe every symbol's bar stream (or `symbols`'), several requests in flight
        (IB allows 50 at once; the broker paces their starts); initial bars join the pending
        minutes. With `failed`, a symbol whose request fails is noted there, not raised."""
        broker = self.broker
        out: dict[str, BarArrays] = {}
        gate = asyncio.Semaphore(SUBSCRIPTIONS_IN_FLIGHT)
        on_bar = self.on_bar(self.on_stream_bar)
        wanted = self.symbols if symbols is None else symbols

        async def one(sym: str) -> None:
            try:
                async with gate:
                    bars = await broker.subscribe_bars(
                        sym, duration, on_bar, realtime_bars=sym in self.realtime
                    )
            except Exception as exc:
                if failed is None or not broker.connected:
                    raise
                failed[sym] = f"{type(exc).__name__}: {exc}"
                return
            out[sym] = bars
            self._keep(sym, bars)

        tasks = [asyncio.ensure_future(one(sym)) for sym in wanted]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        now = await broker.server_time_ns()
        self.run.see_server_time(now)
        self.minutes.mark_alive(now)
        self.run.stats.resubscribes += 1
        # an answer ending now ends with the forming minute: it stays pending (provisional,
        # revised by the stream) but is no part of the history
        return {sym: closed_only(out[sym], now) for sym in wanted if sym in out}

    def _keep(self, sym: str, bars: BarArrays) -> None:
        """A subscription's initial bars from the engine's next minute join the pending ones."""
        nxt = self.engine.next_label if self.engine.started else 0
        for i in range(bars.ts.shape[0]):
            label = int(bars.ts[i])
            if label >= nxt:
                self.minutes.store(sym, label, bars.open[i], bars.close[i], bars.volume[i])

    async def resubscribe_one(self, sym: str) -> None:
        """One symbol's stream again (its old one ended first), with the history since the
        engine's next minute; the other symbols' streams are left alone."""
        bars = await self.broker.subscribe_bars(
            sym,
            catchup_duration(self.calendar, self.engine.next_label, self.run.server_ns),
            self.on_bar(self.on_stream_bar),
            realtime_bars=sym in self.realtime,
        )
        self._keep(sym, bars)
        self.run.wake.set()

    def on_stream_bar(self, sym: str, bar: StreamBar) -> None:
        e = self.engine
        if not e.started:  # warming up: keep it, the warm-up sorts it out
            self.minutes.store(sym, bar.label_ns, bar.open, bar.close, bar.volume)
            return
        if bar.label_ns < e.next_label:
            return
        # a revision of a forming minute, or a later bar that closes the ones before it
        self.minutes.store(sym, bar.label_ns, bar.open, bar.close, bar.volume)
        if self.minutes.complete(e.next_label, self.run.server_ns, e.session_open_ns):
            self.run.wake.set()
        else:
            self._kick_time(bar.label_ns)

    def ask_time_capped(self) -> None:
        """A time request after a step that sent nothing, under the same cap as bar-triggered
        ones (it shows the server the minute was dealt with; gateway/desks/lockstep.py)."""
        self._kick_time(-1)

    def _kick_time(self, label: int) -> None:
        """Ask the server's time (a minute may wait for it), at most every TIME_KICK_SECONDS:
        forming revisions come many times a minute per symbol, and ib_async sends at most 45
        requests a second, so time requests on each would queue the orders behind them. A
        request wanted sooner is deferred (and dropped only if a later server time came in
        meanwhile: the minutes were looked at again with it). The first bar of a newer minute than
        the last kick's asks at once: the server's clock has moved on (once a minute, so no
        flood), and a replay that sends minutes faster than real time (a test's step mode, a
        lockstep replay) does not wait the cap out at every minute."""
        now = time.monotonic()
        wait = self._last_kick + TIME_KICK_SECONDS - now
        if label > self._kick_label:
            self._kick_label = label
            wait = 0.0
        if wait <= 0:
            self._last_kick = now
            self.run.kick_time()
        elif not self._kick_pending:
            self._kick_pending = True
            self._deferred_at_ns = self.run.server_ns
            asyncio.get_running_loop().call_later(wait, self._deferred_kick)

    def _deferred_kick(self) -> None:
        self._kick_pending = False
        if self.run.server_ns > self._deferred_at_ns:
            return  # a later time came meanwhile: the minutes were looked at again with it
        self._last_kick = time.monotonic()
        self.run.kick_time()

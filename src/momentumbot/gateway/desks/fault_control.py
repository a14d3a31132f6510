"""The fault control desk: switching faults on and off, connectivity lost and restored, nightly
resets and restarts, and the faults scheduled by New York wall time (`outage=`, `nightly-reset=`,
`restart=`, `cancel-stream=SYM@HH:MM`) that the clock desk runs between calendar events."""

from __future__ import annotations

import datetime as dt
import heapq
import logging
from collections.abc import Callable

import pandas as pd

from momentumbot.gateway.clock import VirtualClock, ny_ns
from momentumbot.gateway.desks.accounts import AccountDesk
from momentumbot.gateway.desks.market_data import MarketDataDesk
from momentumbot.gateway.desks.orders import OrderDesk
from momentumbot.gateway.desks.sessions import SessionDesk
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import NS, NS_PER_MINUTE, ny_time
from momentumbot.gateway.record import Recorder

log = logging.getLogger("momentumbot.gateway")

NEVER = 2**62


class FaultDesk:
    def __init__(
        self,
        faults: Faults,
        record: Recorder,
        sessions: SessionDesk,
        market_data: MarketDataDesk,
        accounts: AccountDesk,
        orders: OrderDesk,
        virtual: VirtualClock,
        now: Callable[[], int],
    ) -> None:
        self.faults = faults
        self.record = record
        self.sessions = sessions
        self.market_data = market_data
        self.accounts = accounts
        self.orders = orders
        self.virtual = virtual
        self.now = now
        self._data_lost = False
        self._scheduled: list[tuple[int, int, str, float, str]] = []
        self._pushed_cancels: set[tuple[int, str]] = set()
        self._scheduled_day: dt.date | None = None
        self._seq = 0

    # ---- switches

    def apply(self, spec: str) -> None:
        self.faults.apply(spec)
        self.record.note("fault", self.now(), spec=spec)
        log.warning("fault switched on: %s", spec)
        self._cancel_streams_now()

    # ---- cancel-stream

    def _cancel_streams_now(self) -> None:
        """`cancel-stream=SYM` without a time: at once (once); with one, today's if still to
        come and today is already scheduled (later days are scheduled with the others)."""
        f = self.faults
        now = self.now()
        for sym, minute in list(f.cancel_streams):
            if minute < 0:
                f.cancel_streams.remove((sym, minute))
                self.cancel_stream(sym)
            elif self._scheduled_day == ny_time(now).date():
                t = ny_ns(pd.Timestamp(self._scheduled_day), 0, 0) + minute * NS_PER_MINUTE
                if t > now and (t, sym) not in self._pushed_cancels:
                    self._pushed_cancels.add((t, sym))
                    self._push(t, "cancel-stream", 0.0, sym)

    def cancel_stream(self, symbol: str) -> None:
        n = self.market_data.cancel_streams(symbol)
        self.record.note("cancel-stream", self.now(), symbol=symbol, streams=n)
        log.warning("fault: %d keepUpToDate stream(s) of %s cancelled (162)", n, symbol)

    def clear(self) -> None:
        self.faults.clear()
        self.record.note("faults cleared", self.now())

    # ---- connectivity and sockets

    def lose_connectivity(self, data_lost: bool = False, drop_order_events: bool = False) -> None:
        self._data_lost = data_lost
        self.record.note("connectivity lost", self.now())
        log.warning("fault: connectivity lost")
        self.sessions.lose_link(drop_order_events)

    def restore_connectivity(self) -> None:
        if not self.sessions.outage:
            return
        data_lost = self._data_lost
        self.record.note("connectivity restored", self.now(), data_lost=data_lost)
        log.warning(
            "fault: connectivity restored (%s)", "data lost" if data_lost else "data maintained"
        )
        self.sessions.restore_link(data_lost, self.market_data.drop_all)
        self.accounts.push_everything()

    def nightly_reset(self, down_seconds: float = 0.0) -> None:
        self.record.note("nightly reset", self.now())
        log.warning("fault: nightly reset, dropping %d sockets", len(self.sessions.sessions))
        self.sessions.drop_all(down_seconds)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.record.note("restart", self.now())
        log.warning("fault: restart, order ids reset to %d", self.orders.first_order_id)
        self.sessions.drop_all(down_seconds)
        self.orders.restart()
        self.sessions.held_ids.clear()

    # ---- scheduled by New York wall time

    def next_scheduled(self) -> int:
        """Market time of the next scheduled fault (scheduling today's on a new day)."""
        f = self.faults
        if not (f.outages or f.nightly_resets or f.restarts or f.cancel_streams):
            return NEVER
        now = self.now()
        day = ny_time(now).date()
        if self._scheduled_day != day:
            self._scheduled_day = day
            base = ny_ns(pd.Timestamp(day), 0, 0)
            for minute, secs in f.outages:
                t = base + minute * NS_PER_MINUTE
                if t > now:
                    self._push(t, "outage", secs)
                    self._push(t + int(secs * NS), "restore", 0.0)
            for minute, secs in f.nightly_resets:
                t = base + minute * NS_PER_MINUTE
                if t > now:
                    self._push(t, "nightly-reset", secs)
            for minute, secs in f.restarts:
                t = base + minute * NS_PER_MINUTE
                if t > now:
                    self._push(t, "restart", secs)
            for sym, minute in f.cancel_streams:
                t = base + minute * NS_PER_MINUTE
                if minute >= 0 and t > now and (t, sym) not in self._pushed_cancels:
                    self._pushed_cancels.add((t, sym))
                    self._push(t, "cancel-stream", 0.0, sym)
            # come back tomorrow to schedule the next day
            self._push(base + 86_400 * NS + NS, "noop", 0.0)
        return self._scheduled[0][0] if self._scheduled else NEVER

    def _push(self, t: int, what: str, arg: float, symbol: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._scheduled, (t, self._seq, what, arg, symbol))

    def run_scheduled(self) -> None:
        """Run the next scheduled fault (the port stays closed `arg` replay seconds)."""
        _, _, what, arg, symbol = heapq.heappop(self._scheduled)
        if what == "outage":
            self.lose_connectivity()
        elif what == "restore":
            self.restore_connectivity()
        elif what == "nightly-reset":
            self.nightly_reset(down_seconds=self.virtual.real_seconds(arg))
        elif what == "restart":
            self.restart(down_seconds=self.virtual.real_seconds(arg))
        elif what == "cancel-stream":
            self.cancel_stream(symbol)

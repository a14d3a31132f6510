"""The fault control desk: switching faults on and off, connectivity lost and restored (1100,
or 2110 with `farm-broken`), nightly resets and restarts, socket port resets (1300), the HMDS
farm's down times (`hmds-down`, `hmds-down-after-restore`, kept by the farms desk), streams
cancelled (`cancel-stream`), and the faults scheduled by New York wall time (`outage=`,
`nightly-reset=`, `restart=`, `farm-broken=`, `port-reset=`, `cancel-stream=SYM@HH:MM`) that
the clock desk runs between calendar events."""

from __future__ import annotations

import datetime as dt
import heapq
import logging
from collections.abc import Callable

import pandas as pd

from momentumbot.gateway.clock import VirtualClock, ny_ns
from momentumbot.gateway.desks.accounts import AccountDesk
from momentumbot.gateway.desks.farms import FarmDesk
from momentumbot.gateway.desks.market_data import MarketDataDesk
from momentumbot.gateway.desks.orders import OrderDesk
from momentumbot.gateway.desks.sessions import SessionDesk
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import NS, NS_PER_MINUTE, ny_time
from momentumbot.gateway.record import Recorder

log = logging.getLogger("momentumbot.gateway")

NEVER = 2**62
FARM_BROKEN = (
    2110,
    "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
)


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
        farms: FarmDesk,
    ) -> None:
        self.farms = farms
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
        self._one_shots()

    # ---- switches

    def apply(self, spec: str) -> None:
        self.faults.apply(spec)
        self.record.note("fault", self.now(), spec=spec)
        log.warning("fault switched on: %s", spec)
        self._one_shots()
        self._cancel_streams_now()

    def _one_shots(self) -> None:
        """Faults that act the moment they are switched on (or at the start, from --fault)."""
        f = self.faults
        if f.hmds_down > 0:
            self.hmds_down_for(f.hmds_down)
            f.hmds_down = 0.0
        if f.farm_broken_now:
            f.farm_broken_now = False
            self.break_farm()
        if f.port_reset_now:
            f.port_reset_now = False
            self.port_reset()

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
        self.farms.bring_hmds_up()
        self.record.note("faults cleared", self.now())

    def hmds_down_for(self, seconds: float) -> None:
        """The HMDS farm goes down for `seconds` market seconds (2105 ... 2106)."""
        until = self.farms.take_hmds_down(seconds)
        self._push(until, "hmds-check", 0.0)

    def _hmds_after_restore(self) -> None:
        if self.faults.hmds_down_after_restore > 0:
            self.hmds_down_for(self.faults.hmds_down_after_restore)

    # ---- connectivity and sockets

    def lose_connectivity(self, data_lost: bool = False, drop_order_events: bool = False) -> None:
        self._data_lost = data_lost
        self.record.note("connectivity lost", self.now())
        log.warning("fault: connectivity lost")
        self.sessions.lose_link(drop_order_events)

    def break_farm(self) -> None:
        """2110 (connectivity between TWS and IB's servers broken) without 1100: bars stop,
        history requests fail, order messages are held until `restore_connectivity` (1102)."""
        if self.sessions.outage:
            return
        self._data_lost = False
        self.record.note("farm broken", self.now())
        log.warning("fault: connectivity between TWS and server broken (2110)")
        self.sessions.lose_link(False, FARM_BROKEN)

    def port_reset(self) -> None:
        """1300 to every client, then its socket is dropped (the port stays open)."""
        self.record.note("port reset", self.now())
        port = self.sessions.port
        log.warning("fault: socket port reset, dropping %d sockets", len(self.sessions.sessions))
        for s in list(self.sessions.sessions):
            if s.ready:
                s.error(
                    -1,
                    1300,
                    "TWS socket port has been reset and this connection is being dropped. "
                    f"Please reconnect on port {port}.",
                )
            s.close_after_flush()

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
        self._hmds_after_restore()

    def nightly_reset(self, down_seconds: float = 0.0) -> None:
        self.record.note("nightly reset", self.now())
        log.warning("fault: nightly reset, dropping %d sockets", len(self.sessions.sessions))
        self.sessions.drop_all(down_seconds)
        self._hmds_after_restore()
        self.orders.reset_day()

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
        if not (
            f.outages
            or f.nightly_resets
            or f.restarts
            or f.farm_broken
            or f.port_resets
            or f.cancel_streams
        ):
            return self._scheduled[0][0] if self._scheduled else NEVER
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
            for minute, secs in f.farm_broken:
                t = base + minute * NS_PER_MINUTE
                if t > now:
                    self._push(t, "farm-broken", secs)
                    if secs > 0:
                        self._push(t + int(secs * NS), "restore", 0.0)
            for minute in f.port_resets:
                t = base + minute * NS_PER_MINUTE
                if t > now:
                    self._push(t, "port-reset", 0.0)
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
        elif what == "farm-broken":
            self.break_farm()
        elif what == "port-reset":
            self.port_reset()
        elif what == "hmds-check":
            self.farms.hmds_check()
        elif what == "cancel-stream":
            self.cancel_stream(symbol)

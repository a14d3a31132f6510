"""The clock desk: market time, the calendar's events in time order (session opens, bar closes,
session closes) and scheduled faults between them, worked through as the virtual clock passes
them; `currentTime` requests."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.gateway import protocol as p
from momentumbot.gateway.clock import VirtualClock
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.desks.lockstep import NO_CLIENT_POLL_SECONDS, Lockstep
from momentumbot.gateway.desks.sessions import Handlers, SessionDesk, register
from momentumbot.gateway.market import NS, NS_PER_MINUTE
from momentumbot.gateway.protocol import Reader

log = logging.getLogger("momentumbot.gateway")

SLOW_CLIENT_SECONDS = 10.0
EVENTS_PER_YIELD = 32
NEVER = 2**62
RUNNING_POLL_SECONDS = 0.05

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
                return NEVER
        return int(self.t[self.i])

    def pop(self) -> tuple[int, int, int]:
        k = self.i
        self.i += 1
        return int(self.t[k]), int(self.kind[k]), int(self.ref[k])


class ClockDesk:
    """Owns market time. In step mode it moves only by `advance_to`; running, a task follows the
    virtual clock, waking on the real (injected) clock's timers (at `--speed max` it goes from
    event to event at once). Each calendar event goes to `on_event(t, kind, ref)`; scheduled
    faults are asked for their next time (`next_scheduled`) and run in turn (`run_scheduled`,
    which says whether the run was a lockstep point). A running clock waits at `lockstep`'s
    points and, before the first open, while it holds (`gateway.desks.lockstep`)."""

    def __init__(
        self,
        virtual: VirtualClock,
        timeline: Timeline,
        start_ns: int,
        sessions: SessionDesk,
        on_event: Callable[[int, int, int], None],
        next_scheduled: Callable[[], int],
        run_scheduled: Callable[[], bool],
        lockstep: Lockstep | None = None,
        first_open_ns: int = NEVER,
    ) -> None:
        self.virtual = virtual
        self.timeline = timeline
        self.sessions = sessions
        self._now_ns = start_ns
        self.session_open = False
        self._on_event = on_event
        self._next_scheduled = next_scheduled
        self._run_scheduled = run_scheduled
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = False
        self._run_task: asyncio.Task[None] | None = None
        self.lockstep = lockstep
        self.first_open_ns = first_open_ns

    def register(self, handlers: Handlers) -> None:
        register(handlers, {49: self._req_current_time})

    def now_ns(self) -> int:
        return self._now_ns

    def _req_current_time(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_current_time(self._now_ns // NS))

    # ---- running

    def start(self) -> None:
        """A running clock starts now, showing the current market time."""
        self.virtual.start_at(self._now_ns)
        self._run_task = asyncio.create_task(self._run(), name="gateway-clock")

    async def stop(self) -> None:
        # The task ends on the flag; cancelling alone is not enough on Python 3.11, whose
        # wait_for can swallow a cancellation that races with the awaited event.
        self._closing = True
        self._wake.set()
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.wait({self._run_task}, timeout=5)
            self._run_task = None

    def wake(self) -> None:
        self._wake.set()

    async def advance_to(self, ns: int) -> None:
        self.virtual.jump_to(ns)
        await self._process_until(ns)

    def _holding(self) -> bool:
        """Before the first open, the clock waits for a client (`--hold-until-client`)."""
        ls = self.lockstep
        return ls is not None and self._now_ns < self.first_open_ns and ls.holding()

    async def _run_max(self) -> None:
        """`--speed max`: to the next event at once (lockstep paces it)."""
        assert self.lockstep is not None
        if self._holding():
            await self.lockstep.sleep(NO_CLIENT_POLL_SECONDS)
            return
        nxt = min(self.timeline.next_time(), self._next_scheduled())
        if nxt >= NEVER:
            await self.lockstep.sleep(RUNNING_POLL_SECONDS)
            return
        await self.advance_to(nxt)

    async def _run(self) -> None:
        clock = self.virtual
        while not self._closing:
            if math.isinf(clock.speed) and not clock.paused:
                await self._run_max()
                continue
            target = clock.now_ns()
            if self._holding() and target >= self.first_open_ns:
                target = self.first_open_ns - 1  # stays just before the open
                clock.start_at(max(target, self._now_ns))
            if target > self._now_ns:
                await self._process_until(target)
            if clock.paused:
                delay = 3600.0
            else:
                nxt = min(self.timeline.next_time(), self._next_scheduled())
                delay = (nxt - clock.now_ns()) / NS / clock.speed
                delay = min(max(delay, 0.0), RUNNING_POLL_SECONDS)
            if delay > 0:
                self._wake.clear()
                timer = clock.real.call_later(delay, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
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
                if t > target or (self.virtual.paused and t > self.virtual.now_ns()):
                    break
                self._now_ns = max(self._now_ns, t)
                if t_sched <= t_ev:
                    point = self._run_scheduled()
                else:
                    t, kind, ref = self.timeline.pop()
                    self._event(t, kind, ref)
                    point = True
                n += 1
                if point and self._lockstepping():
                    target = await self._lockstep_point(t, target)
                    continue
                if n % EVENTS_PER_YIELD == 0:
                    await self._yield_to_clients()
            self._now_ns = max(self._now_ns, min(target, self.virtual.now_ns()))
            for s in list(self.sessions.sessions):
                s.flush()

    def _lockstepping(self) -> bool:
        return self.lockstep is not None and self.lockstep.lockstep and not self.virtual.paused

    async def _lockstep_point(self, t: int, target: int) -> int:
        """Wait for the bar clients to go quiet after what `t` sent; a clock running at a speed
        waits too (it goes on from `t`): the new target is what it shows then."""
        assert self.lockstep is not None
        for s in list(self.sessions.sessions):
            s.flush()
        await self.lockstep.wait()
        if math.isinf(self.virtual.speed):
            return target
        self.virtual.start_at(t)
        return min(target, t)

    def _event(self, t: int, kind: int, ref: int) -> None:
        if kind == SESSION_OPEN:
            self.session_open = True
        self._on_event(t, kind, ref)
        if kind == SESSION_CLOSE:
            self.session_open = False

    async def _yield_to_clients(self) -> None:
        """Flush, let clients read; wait for one that reads slowly (an I/O guard on the event
        loop's own time: a client that reads nothing for 10 s is dropped)."""
        sessions = self.sessions.sessions
        for s in list(sessions):
            s.flush()
        await asyncio.sleep(0)
        for s in list(sessions):
            if s.writable.is_set():
                continue
            try:
                await asyncio.wait_for(s.writable.wait(), SLOW_CLIENT_SECONDS)
            except TimeoutError:
                log.warning("client %s reads too slowly; dropping it", s.client_id)
                s.abort()

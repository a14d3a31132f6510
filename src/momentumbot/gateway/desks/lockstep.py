"""The lockstep desk: when a running clock may go on. `--lockstep` holds it, after each
lockstep point (a session's open or close, a minute's close, the first forming-bar revision
after a close), until every client that subscribes to bars has gone quiet: its requests are
answered (the gateway answers them as they come), its output has left the gateway, and it has
answered the point (sent anything after the point's messages went out) and then sent nothing for
`settle_seconds` real seconds; a client that does not answer at all is waited for `idle_seconds`
(a bot answers every minute: a time request for a minute it cannot close yet, or its orders and
a time request after a step; its silent part, deciding and writing its journal, comes before
that answer). So a replay at any speed, and at `--speed max` (the next event at once), gives
the backtest's orders and fills.

`--hold-until-client` (without lockstep) holds the clock before the first session's open until a
client has subscribed to bars and then sent nothing but currentTime requests (an idle bot polls
the time) for HOLD_QUIET_SECONDS: its warm-up is done (a bot books its history after the
streams are open). Lockstep holds too."""

from __future__ import annotations

import asyncio
import math

from momentumbot.gateway.clock import Monotonic
from momentumbot.gateway.desks.connection import ClientSession, HistSub, RtSub
from momentumbot.gateway.desks.sessions import SessionDesk

SPEED_MAX = math.inf  # `--speed max`: each event at once (only with lockstep)
LOCKSTEP_SETTLE_SECONDS = 0.05
LOCKSTEP_IDLE_SECONDS = 0.25
# ib_async (and ib_insync) send at most 45 requests a second and hold the rest in the client:
# a client that sent this many within the last second may be holding more (a burst of
# orders), so its silence counts only after a whole throttle interval
THROTTLED_REQUESTS = 40
THROTTLE_INTERVAL_SECONDS = 1.0
HOLD_QUIET_SECONDS = 0.5  # the hold ends once a bar client sent only time requests this long
NO_CLIENT_POLL_SECONDS = 0.05
ANSWER_POLL_SECONDS = 0.002


def parse_speed(text: str) -> float:
    """`--speed`: market seconds per real second, or `max` (SPEED_MAX)."""
    if text.strip().lower() == "max":
        return SPEED_MAX
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a number nor max") from None
    if not speed > 0 or math.isinf(speed):
        raise ValueError("must be a positive number or max")
    return speed


def subscribes_bars(s: ClientSession) -> bool:
    return s.ready and not s.closed and any(isinstance(x, HistSub | RtSub) for x in s.subs.values())


class Lockstep:
    """See the module docstring. `lockstep` and `hold` say which of the two is on; `wait()` is
    one lockstep point; `holding()` says whether the clock must stay before the first open for
    now."""

    def __init__(
        self,
        sessions: SessionDesk,
        real: Monotonic,
        *,
        lockstep: bool,
        hold_until_client: bool,
        settle_seconds: float = LOCKSTEP_SETTLE_SECONDS,
        idle_seconds: float = LOCKSTEP_IDLE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.real = real
        self.lockstep = lockstep
        self.hold = hold_until_client or lockstep
        self.settle_seconds = settle_seconds
        self.idle_seconds = max(idle_seconds, settle_seconds)
        self.points = 0  # lockstep points passed (status, the benchmark)
        self.waited_seconds = 0.0
        self._mark = -math.inf  # real time the current point's output went out
        self._wake = asyncio.Event()

    def bar_clients(self) -> list[ClientSession]:
        return [s for s in self.sessions.sessions if subscribes_bars(s)]

    def settled(self) -> tuple[bool, float]:
        """Whether every bar client is quiet now; if not, how long to look again after."""
        clients = self.bar_clients()
        if not clients:
            return False, NO_CLIENT_POLL_SECONDS
        mark = self._mark
        if all(s.last_request > mark for s in clients):  # each answered the point
            left = max(s.last_request + self._settle(s) for s in clients) - self.real.now()
        else:  # look again soon: an answer shortens the wait
            left = min(mark + self.idle_seconds - self.real.now(), ANSWER_POLL_SECONDS)
        if left > 0:
            return False, left
        if any(s.buffered or s.pending_output for s in clients):
            return False, 0.001
        return True, 0.0

    def _settle(self, s: ClientSession) -> float:
        """How long a client's silence must last: the settle time, or a whole throttle
        interval when it has just sent at the rate its client library throttles at."""
        recent = s.recent_requests
        last = s.last_request
        busy = sum(1 for t in recent if last - t < THROTTLE_INTERVAL_SECONDS)
        if busy >= THROTTLED_REQUESTS:
            return max(self.settle_seconds, THROTTLE_INTERVAL_SECONDS)
        return self.settle_seconds

    def holding(self) -> bool:
        """Before the first open: no client has subscribed to bars and then sent only time
        requests for HOLD_QUIET_SECONDS yet (once one has, the hold is over for good)."""
        if not self.hold:
            return False
        clients = self.bar_clients()
        quiet = max(self.settle_seconds, HOLD_QUIET_SECONDS)
        if clients and all(self.real.now() - s.last_not_time >= quiet for s in clients):
            self.hold = False
        return self.hold

    async def wait(self) -> None:
        """A lockstep point: wait until every bar client is quiet (and there is one)."""
        self.points += 1
        start = self._mark = self.real.now()
        while not self.sessions.closing:
            ok, delay = self.settled()
            if ok:
                break
            await self.sleep(delay)
        self.waited_seconds += self.real.now() - start

    async def sleep(self, seconds: float) -> None:
        """`seconds` on the injected real clock."""
        self._wake.clear()
        timer = self.real.call_later(seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def status(self) -> dict[str, float | int | bool]:
        return {
            "lockstep": self.lockstep,
            "holding": self.hold,
            "settle_seconds": self.settle_seconds,
            "idle_seconds": self.idle_seconds,
            "points": self.points,
            "waited_seconds": round(self.waited_seconds, 3),
        }

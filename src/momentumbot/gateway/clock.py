"""The gateway's clocks: real (monotonic) time, injected so tests step it, and the virtual market
clock that runs on it."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from momentumbot.gateway.market import NS, NY


class Timer(Protocol):
    def cancel(self) -> None: ...


class Monotonic(Protocol):
    """Real time as the gateway reads it: seconds that never go back (`now`), and callbacks
    after a number of those seconds (`call_later`, from inside the event loop)."""

    def now(self) -> float: ...

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer: ...


class SystemClock:
    """The machine's monotonic clock (time.monotonic, comparable across processes on one
    machine) and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, fn)


class _ManualTimer:
    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._clock._pending -= 1


class ManualClock:
    """Real time that moves only when a test says so: `advance(seconds)` runs, in time order,
    every callback that falls due on the way."""

    def __init__(self, start: float = 1000.0) -> None:
        self._t = start
        self._seq = 0
        self._pending = 0
        self._due: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []

    def now(self) -> float:
        return self._t

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        timer = _ManualTimer(self)
        self._seq += 1
        self._pending += 1
        heapq.heappush(self._due, (self._t + max(seconds, 0.0), self._seq, timer, fn))
        return timer

    @property
    def pending(self) -> int:
        """Callbacks waiting to fall due."""
        return self._pending

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        end = self._t + seconds
        while self._due and self._due[0][0] <= end:
            at, _, timer, fn = heapq.heappop(self._due)
            if timer.cancelled:
                continue
            timer.cancel()  # fired: no longer pending
            self._t = max(self._t, at)
            fn()
        self._t = end


class VirtualClock:
    """Market time: `speed` market seconds per real second, or only explicit steps when paused.
    An infinite speed (`--speed max`) moves only by `jump_to`: the clock desk jumps from event to
    event as lockstep allows."""

    def __init__(self, start_ns: int, speed: float, paused: bool, real: Monotonic) -> None:
        self.speed = speed
        self.paused = paused
        self.real = real
        self._anchor_v = start_ns
        self._anchor_r = real.now()

    def now_ns(self) -> int:
        if self.paused or math.isinf(self.speed):
            return self._anchor_v
        return self._anchor_v + int((self.real.now() - self._anchor_r) * self.speed * NS)

    def _reanchor(self) -> None:
        self._anchor_v = self.now_ns()
        self._anchor_r = self.real.now()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._reanchor()
        self.speed = speed

    def pause(self) -> None:
        self._reanchor()
        self.paused = True

    def resume(self) -> None:
        self._anchor_r = self.real.now()
        self.paused = False

    def start_at(self, ns: int) -> None:
        """Show `ns` now: a running clock starts here (time spent before does not count)."""
        self._anchor_v = ns
        self._anchor_r = self.real.now()

    def jump_to(self, ns: int) -> None:
        if ns > self.now_ns():
            self._anchor_v = ns
            self._anchor_r = self.real.now()

    def anchor(self) -> dict[str, float | int | bool]:
        """The clock's state: market time `virtual_ns` was shown at `monotonic` (the real clock's
        reading; time.monotonic by default, comparable across processes on one machine); it
        moves at `speed` unless paused."""
        return {
            "virtual_ns": self._anchor_v,
            "monotonic": self._anchor_r,
            "speed": self.speed,
            "paused": self.paused,
        }

    def real_time_of(self, ns: int) -> float:
        """When (on the real clock) the clock shows `ns`, if it runs."""
        return self._anchor_r + (ns - self._anchor_v) / NS / self.speed

    def real_seconds(self, replay_seconds: float) -> float:
        """Replay seconds in real seconds at the clock's speed (paused: one for one)."""
        running = not self.paused and self.speed > 0
        return replay_seconds / self.speed if running else replay_seconds

    def label(self) -> str:
        """How the clock runs, for status lines: step, max or xSPEED."""
        if self.paused:
            return "step"
        return "max" if math.isinf(self.speed) else f"x{self.speed:g}"


def ny_ns(day: pd.Timestamp, hour: int, minute: int) -> int:
    """UTC ns of a New York wall time on `day`."""
    t = pd.Timestamp(year=day.year, month=day.month, day=day.day, hour=hour, minute=minute, tz=NY)
    return int(t.tz_convert("UTC").value)

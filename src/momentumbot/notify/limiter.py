"""Which alerts go out: the same key within the de-duplication window is sent once, and at
most `max_per_minute` in any 60 s (the rest are counted and the count rides on the next one
sent). Pure and clocked by the caller, so it is tested without waiting."""

from __future__ import annotations

from collections import deque

from momentumbot.notify.events import UNCAPPED, Event

WINDOW = 60.0  # seconds of the per-minute cap


class RateLimiter:
    def __init__(self, dedupe_seconds: float, max_per_minute: int) -> None:
        self.dedupe_seconds = dedupe_seconds
        self.max_per_minute = max_per_minute
        self._last_sent: dict[str, float] = {}
        self._sent_times: deque[float] = deque()
        self.duplicates = 0  # alerts not sent because the same key went out recently
        self.capped = 0  # alerts dropped by the per-minute cap, not yet told of

    def admit(self, kind: Event, key: str, now: float) -> bool:
        """Whether an alert of `kind` with `key` goes out at `now` (seconds, monotonic)."""
        last = self._last_sent.get(key)
        if last is not None and now - last < self.dedupe_seconds:
            self.duplicates += 1
            return False
        while self._sent_times and now - self._sent_times[0] >= WINDOW:
            self._sent_times.popleft()
        if len(self._sent_times) >= self.max_per_minute and kind not in UNCAPPED:
            self.capped += 1
            return False
        self._sent_times.append(now)
        self._last_sent[key] = now
        return True

    def take_capped(self) -> int:
        """How many were dropped by the cap since the last call (then 0)."""
        n, self.capped = self.capped, 0
        return n

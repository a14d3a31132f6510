"""How long a run has been degraded, and when it gives up.

After a reconnect or a restore the bot resynchronises: it reconciles with the broker and
subscribes every bar stream again. IB's data farms are often still down then (2105, history
requests answered 162 or not at all), so a resync must never park the bot: it retries with
backoff, trades the symbols that did resubscribe (the others are stale: no stream, their minutes
step without bars), logs an ERROR every minute while degraded, and after `[broker]
resync_give_up_minutes` of real time stops the run with `ResyncGaveUp` (exit code 8) so a
process supervisor restarts it; the same command resumes the run folder."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from momentumbot.domain.errors import MomentumbotError

log = logging.getLogger("momentumbot.trade")

ERROR_EVERY_SECONDS = 60.0
RETRY_MAX_SECONDS = 30.0  # a farm back is noticed within this long
EVERY_SYMBOL = "*"  # a failure before any stream was asked for (reconcile, server time)


class ResyncGaveUp(MomentumbotError):
    """The bot could not resynchronise with the broker within [broker] resync_give_up_minutes
    (IB's historical data farm down, history requests failing): it stopped without new orders
    so that a process supervisor restarts it; the same command resumes the run folder."""

    exit_code = 8


@dataclass
class Degraded:
    """Since when a resync has been failing (wholly or for some symbols), and what failed."""

    give_up_seconds: float
    clock: Callable[[], float] = time.monotonic
    since: float | None = None
    stale: dict[str, str] = field(default_factory=dict)  # symbol (or "*") -> its last error
    _last_error: float = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def note(self, why: str, failed: dict[str, str], n_symbols: int) -> None:
        """A resync try failed for `failed`: log an ERROR at once and then every minute."""
        now = self.clock()
        if self.since is None:
            self.since = now
            self._last_error = now - ERROR_EVERY_SECONDS
        self.stale = dict(failed)
        if now - self._last_error < ERROR_EVERY_SECONDS:
            return
        self._last_error = now
        log.error("resync after %s: %s", why, self.describe(n_symbols))

    def describe(self, n_symbols: int) -> str:
        mins = (self.clock() - (self.since or self.clock())) / 60
        left = self.give_up_seconds / 60 - mins
        if EVERY_SYMBOL in self.stale:
            what = f"not resynchronised ({self.stale[EVERY_SYMBOL]}): not trading"
        else:
            names = sorted(self.stale)
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            first = self.stale[names[0]] if names else ""
            if len(names) >= n_symbols:
                what = f"no symbol resubscribed ({first}): not trading"
            else:
                what = (
                    f"{len(names)} of {n_symbols} symbols without a bar stream ({shown}: "
                    f"{first}); trading the others"
                )
        return (
            f"degraded for {mins:.1f} min: {what}; retrying, giving up (exit code 8) in "
            f"{max(left, 0):.1f} min"
        )

    @property
    def overdue(self) -> bool:
        return self.since is not None and self.clock() - self.since >= self.give_up_seconds

    def clear(self) -> None:
        if self.since is not None:
            log.warning(
                "resync complete after %.1f min degraded: every symbol streams again",
                (self.clock() - self.since) / 60,
            )
        self.since = None
        self.stale = {}


__all__ = ["Degraded", "ResyncGaveUp"]

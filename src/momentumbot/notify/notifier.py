"""The notifier the trader calls: `event(kind, title, body, key=...)` returns at once; what
the limiter admits goes to each target's lane (`lanes`: a bounded queue and a worker thread
with a timeout per send). A failing or hanging target never blocks or crashes trading.

`link_lost(why)` / `link_back()` time an outage: it is sent once it has lasted
`lost_minutes`, and then its restore; a shorter one sends nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from momentumbot.config.schema import AppConfig, NotifyConfig
from momentumbot.notify.events import Alert, Event
from momentumbot.notify.lanes import Lane
from momentumbot.notify.limiter import RateLimiter
from momentumbot.notify.scrub import Scrubber, ScrubFilter
from momentumbot.notify.targets import Target, make_targets, read_urls

log = logging.getLogger("momentumbot.notify")

# environment variables whose values never appear in an alert, besides the notify URLs
SECRET_ENV_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "_URLS")


def minutes_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class Notifier:
    """See the module docstring. Without targets it is off: every call returns at once."""

    def __init__(
        self,
        targets: Sequence[Target],
        cfg: NotifyConfig,
        scrub: Scrubber | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        warnings: Sequence[str] = (),
    ) -> None:
        self.targets = list(targets)
        self.events = frozenset(Event(e) for e in cfg.events)
        self.scrub = scrub or Scrubber()
        self.clock = clock
        self.warnings = list(warnings)
        self.limiter = RateLimiter(cfg.dedupe_minutes * 60.0, cfg.max_per_minute)
        self.lanes = [Lane(t, cfg.queue_size, self.scrub) for t in self.targets]
        self.lost_seconds = cfg.lost_minutes * 60.0
        self.timeout_seconds = cfg.send_timeout_seconds
        self.context = "momentumbot"  # the start of every title ("momentumbot paper 1a2b3c4d")
        self._lock = threading.RLock()
        self._closing = False
        self._lost_since: float | None = None
        self._lost_timer: threading.Timer | None = None
        self._lost_sent = False

    @classmethod
    def off(cls) -> Notifier:
        return cls([], NotifyConfig())

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    @property
    def sent(self) -> dict[int, int]:
        return {lane.target.number: lane.sent for lane in self.lanes}

    @property
    def failed(self) -> dict[int, int]:
        return {lane.target.number: lane.failed for lane in self.lanes}

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self.lanes)

    # ------------------------------------------------------------------ the caller's side

    def event(self, kind: Event, title: str, body: str = "", *, key: str = "") -> bool:
        """Queue an alert if `[notify] events` has its kind and the limiter admits it; returns
        at once either way. `key` names what it is about (same key within the
        de-duplication window: sent once); by default the kind and the title."""
        if not self.enabled or kind not in self.events:
            return False
        with self._lock:
            if self._closing or not self.limiter.admit(
                kind, key or f"{kind}:{title}", self.clock()
            ):
                return False
            capped = self.limiter.take_capped()
            if capped:
                body = f"{body}\n({capped} earlier alert(s) held back by the rate limit)".strip()
            body = body or title  # services refuse an empty body
            alert = Alert(kind, self.scrub(f"{self.context}: {title}"), self.scrub(body), key)
            for lane in self.lanes:
                lane.put(alert)
        return True

    def link_lost(self, why: str) -> None:
        """The link to the broker is down (1100, a dropped socket); timed from the first call."""
        if not self.enabled or Event.CONNECTIVITY_LOST not in self.events:
            return
        with self._lock:
            if self._lost_since is not None or self._closing:
                return
            since = self._lost_since = self.clock()
            self._lost_sent = False
            timer = self._lost_timer = threading.Timer(
                self.lost_seconds, self._lost_due, args=(since, why)
            )
            timer.daemon = True
            timer.start()

    def _lost_due(self, since: float, why: str) -> None:
        with self._lock:
            if self._lost_since != since:
                return  # back meanwhile
            self._lost_sent = self.event(
                Event.CONNECTIVITY_LOST,
                "connectivity lost",
                f"{why}; for {minutes_text(self.clock() - since)} so far. "
                "Orders and minutes are held until it is back.",
                key=f"lost:{since:.3f}",
            )

    def link_back(self, how: str = "") -> None:
        """The link is back: its restore is sent when its loss was."""
        with self._lock:
            if self._lost_since is None:
                return
            seconds = self.clock() - self._lost_since
            sent, self._lost_since = self._lost_sent, None
            if self._lost_timer is not None:
                self._lost_timer.cancel()
            if sent:
                self.event(
                    Event.CONNECTIVITY_RESTORED,
                    "connectivity restored",
                    f"back after {minutes_text(seconds)}" + (f" ({how})" if how else ""),
                    key=f"restored:{self.clock():.3f}",
                )

    # ------------------------------------------------------------------ the end

    def flush(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until every queued alert was tried at every target."""
        deadline = time.monotonic() + timeout
        return all([lane.flush(deadline) for lane in self.lanes])

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued, waiting at most `timeout` (by default one send timeout plus a
        second: a target that answers is done by then), then stop; a hanging target is left
        behind with what it still holds."""
        if not self.enabled:
            return
        with self._lock:
            if self._lost_timer is not None:
                self._lost_timer.cancel()
        wait = timeout if timeout is not None else self.timeout_seconds + 1
        done = self.flush(wait)
        with self._lock:
            self._closing = True
        left = sum(lane.close() for lane in self.lanes)
        if not done:
            log.warning("alerts: %d not sent by the stop (a target does not answer)", left)
        failed = sum(self.failed.values())
        if failed or self.dropped or self.limiter.duplicates:
            log.info(
                "alerts: %d sent, %d failed, %d dropped (queue full), %d duplicates not sent",
                sum(self.sent.values()), failed, self.dropped, self.limiter.duplicates,
            )  # fmt: skip

    async def aclose(self, timeout: float | None = None) -> None:
        """`close` without blocking the event loop."""
        if self.enabled:
            await asyncio.to_thread(self.close, timeout)

    def send_now(self, title: str, body: str) -> list[tuple[Target, bool]]:
        """Send one message to every target at once, in this thread (`notify test`)."""
        results = []
        for target in self.targets:
            try:
                ok = target.send(self.scrub(title), self.scrub(body), "info")
            except Exception:
                ok = False
            results.append((target, ok))
        return results


def secrets_of(cfg: AppConfig, env: Mapping[str, str]) -> list[str]:
    """Values an alert must never contain, besides the notify URLs themselves."""
    found = [cfg.data.alphavantage_api_key.get_secret_value()]
    found += [v for k, v in env.items() if k.upper().endswith(SECRET_ENV_SUFFIXES) and v]
    return [s for s in found if len(s) >= 6]


# the loggers of the libraries that send alerts and quote URLs in their records (a filter
# only sees the records of its own logger, not of its children)
LIBRARY_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests")


def _guard_library_logs(scrub: Scrubber) -> None:
    """Apprise's log at warnings and up; its and its HTTP library's records scrubbed (their
    debug lines quote the URLs posted to)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, ScrubFilter)]:
            logger.removeFilter(f)
        logger.addFilter(ScrubFilter(scrub))
    apprise_log = logging.getLogger("apprise")
    if apprise_log.level == logging.NOTSET or apprise_log.level < logging.WARNING:
        apprise_log.setLevel(logging.WARNING)


def build_notifier(
    cfg: AppConfig,
    env: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Notifier:
    """The notifier of a run: targets from MOMENTUMBOT_NOTIFY_URLS or `[notify] urls` (a URL
    Apprise cannot use is a ConfigError). Off without targets."""
    env = os.environ if env is None else env
    sources = read_urls(cfg.notify, env)
    scrub = Scrubber(sources.urls, secrets_of(cfg, env))
    targets = make_targets(sources, cfg.notify.send_timeout_seconds)
    if targets:
        _guard_library_logs(scrub)
    return Notifier(targets, cfg.notify, scrub, clock=clock, warnings=sources.warnings)

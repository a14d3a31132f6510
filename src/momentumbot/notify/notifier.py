"""The notifier the trader calls: `event(kind, title, body, key=...)` returns at once; a
worker thread sends what was admitted (`limiter`) from a bounded queue (full: the oldest is
dropped and counted) with a timeout per target. A failing or hanging target never blocks or
crashes trading: its failure is logged once (until it works again) and counted.

`link_lost(why)` / `link_back()` time an outage: it is sent once it has lasted
`lost_minutes`, and then its restore; a shorter one sends nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from momentumbot.config.schema import AppConfig, NotifyConfig
from momentumbot.notify.events import Alert, Event
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
        self.queue_size = cfg.queue_size
        self.lost_seconds = cfg.lost_minutes * 60.0
        self.timeout_seconds = cfg.send_timeout_seconds
        self.context = "momentumbot"  # the start of every title ("momentumbot paper 1a2b3c4d")
        self.dropped = 0  # queued alerts dropped because the queue was full
        self.sent: dict[int, int] = {t.number: 0 for t in self.targets}
        self.failed: dict[int, int] = {t.number: 0 for t in self.targets}
        self._failing: set[int] = set()
        self._queue: deque[Alert] = deque()
        self._cond = threading.Condition(threading.RLock())
        self._thread: threading.Thread | None = None
        self._closing = False
        self._busy = False
        self._lost_since: float | None = None
        self._lost_why = ""
        self._lost_tried = False  # the lost alert was due and offered (admitted or not)
        self._lost_sent = False

    @classmethod
    def off(cls) -> Notifier:
        return cls([], NotifyConfig())

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    # ------------------------------------------------------------------ the caller's side

    def event(self, kind: Event, title: str, body: str = "", *, key: str = "") -> bool:
        """Queue an alert if `[notify] events` has its kind and the limiter admits it; returns
        at once either way. `key` names what it is about (same key within the
        de-duplication window: sent once); by default the kind and the title."""
        if not self.enabled or kind not in self.events:
            return False
        with self._cond:
            if self._closing or not self.limiter.admit(
                kind, key or f"{kind}:{title}", self.clock()
            ):
                return False
            capped = self.limiter.take_capped()
            if capped:
                body = f"{body}\n({capped} earlier alert(s) held back by the rate limit)".strip()
            body = body or title  # services refuse an empty body
            alert = Alert(kind, self.scrub(f"{self.context}: {title}"), self.scrub(body), key)
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning(
                        "alerts: the queue is full (%d): dropping the oldest (counted)",
                        self.queue_size,
                    )
            self._queue.append(alert)
            self._cond.notify_all()
        self._ensure_worker()
        return True

    def link_lost(self, why: str) -> None:
        """The link to the broker is down (1100, a dropped socket); timed from the first call."""
        if not self.enabled or Event.CONNECTIVITY_LOST not in self.events:
            return
        with self._cond:
            if self._lost_since is not None:
                return
            self._lost_since, self._lost_why = self.clock(), why
            self._lost_tried = self._lost_sent = False
            self._cond.notify_all()
        self._ensure_worker()
        self._lost_due()

    def link_back(self, how: str = "") -> None:
        """The link is back: its restore is sent when its loss was."""
        with self._cond:
            if self._lost_since is None:
                return
            seconds = self.clock() - self._lost_since
            sent = self._lost_sent
            self._lost_since = None
            self._lost_tried = True  # nothing due any more
        if sent:
            self.event(
                Event.CONNECTIVITY_RESTORED,
                "connectivity restored",
                f"back after {minutes_text(seconds)}" + (f" ({how})" if how else ""),
                key=f"restored:{self.clock():.3f}",
            )

    # ------------------------------------------------------------------ the worker

    def _ensure_worker(self) -> None:
        with self._cond:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._work, name="momentumbot-alerts", daemon=True
                )
                self._thread.start()

    def _lost_wait(self) -> float | None:
        """Seconds until the pending outage is due, None if none is pending."""
        if self._lost_since is None or self._lost_tried:
            return None
        return max(0.0, self._lost_since + self.lost_seconds - self.clock())

    def _lost_due(self) -> None:
        with self._cond:
            wait = self._lost_wait()
            if wait is None or wait > 0:
                return
            self._lost_tried = True
            since = self._lost_since or 0.0
            why = self._lost_why
            self._lost_sent = self.event(
                Event.CONNECTIVITY_LOST,
                "connectivity lost",
                f"{why}; for {minutes_text(self.clock() - since)} so far. "
                "Orders and minutes are held until it is back.",
                key=f"lost:{since:.3f}",
            )

    def _work(self) -> None:
        while True:
            self._lost_due()
            with self._cond:
                if not self._queue:
                    if self._closing:
                        return
                    self._cond.wait(timeout=self._lost_wait())
                    continue
                alert = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(alert)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, alert: Alert) -> None:
        for target in self.targets:
            try:
                ok, why = target.send(alert.title, alert.body, alert.severity), "not delivered"
            except Exception as exc:  # a target never takes the worker down
                ok, why = False, self.scrub(f"{type(exc).__name__}: {exc}")
            self._record(target, ok, why)

    def _record(self, target: Target, ok: bool, why: str) -> None:
        if ok:
            self.sent[target.number] += 1
            if target.number in self._failing:
                self._failing.discard(target.number)
                log.info("alerts: %s works again", target.label)
            return
        self.failed[target.number] += 1
        if target.number not in self._failing:
            self._failing.add(target.number)
            log.warning(
                "alerts: %s failed (%s); further failures are counted, not logged, "
                "until it works again", target.label, why,
            )  # fmt: skip

    # ------------------------------------------------------------------ the end

    def flush(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until every queued alert was tried; whether it was."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(timeout=left)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting at most `timeout`, by default one send timeout per
        target plus a second), then stop the worker; a hanging target is left behind."""
        if not self.enabled:
            return
        wait = timeout if timeout is not None else self.timeout_seconds * len(self.targets) + 1
        done = self.flush(wait)
        with self._cond:
            self._closing = True
            left = len(self._queue)
            self._cond.notify_all()
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

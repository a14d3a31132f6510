"""One lane per target: its own bounded queue and worker thread, so a target that hangs holds
only its own alerts, never another target's and never the caller. Full: the oldest alert is
dropped and counted. A failure is logged once, then counted until the target works again."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from momentumbot.notify.events import Alert
from momentumbot.notify.targets import Target

log = logging.getLogger("momentumbot.notify")


class Lane:
    def __init__(self, target: Target, queue_size: int, scrub: Callable[[str], str]) -> None:
        self.target = target
        self.queue_size = queue_size
        self.scrub = scrub
        self.sent = 0
        self.failed = 0
        self.dropped = 0  # dropped because the queue was full
        self._failing = False
        self._queue: deque[Alert] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def put(self, alert: Alert) -> None:
        """Queue an alert (never waits); starts the worker on first use."""
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning(
                        "alerts: %s is behind, its queue is full (%d): dropping the oldest "
                        "(counted)", self.target.label, self.queue_size,
                    )  # fmt: skip
            self._queue.append(alert)
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"momentumbot-alerts-{self.target.number}", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                alert = self._queue.popleft()
                self._busy = True
            try:
                self._send(alert)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, alert: Alert) -> None:
        try:
            ok, why = self.target.send(alert.title, alert.body, alert.severity), "not delivered"
        except Exception as exc:  # a target never takes the worker down
            ok, why = False, self.scrub(f"{type(exc).__name__}: {exc}")
        if ok:
            self.sent += 1
            if self._failing:
                self._failing = False
                log.info("alerts: %s works again", self.target.label)
            return
        self.failed += 1
        if not self._failing:
            self._failing = True
            log.warning(
                "alerts: %s failed (%s); further failures are counted, not logged, "
                "until it works again", self.target.label, why,
            )  # fmt: skip

    def flush(self, deadline: float) -> bool:
        """Wait until every queued alert was tried, or `deadline` (time.monotonic)."""
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=left)
        return True

    def close(self) -> int:
        """Stop taking alerts; the worker ends once its queue is empty. How many are left."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            return len(self._queue) + self._busy

"""The latest lines of the bot's log, kept in memory for the dashboard."""

from __future__ import annotations

import collections
import datetime as dt
import logging


class LogRing(logging.Handler):
    """The last `size` records of the bot's loggers at INFO and above, one line each."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage().strip().splitlines()
            when = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%H:%M:%S")
            self.lines.append(f"{when} {record.levelname:<7} {text[0] if text else ''}")
        except Exception:
            return

    def attach(self) -> LogRing:
        logging.getLogger("momentumbot").addHandler(self)
        return self

    def detach(self) -> None:
        logging.getLogger("momentumbot").removeHandler(self)

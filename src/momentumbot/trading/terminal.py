"""The terminal's one-line events: what an operator watching the bot needs to see (connected,
trading, resynced, halted, session done, and the bot's own warnings and errors), one line
each, while every record (the bot's and its libraries') goes to run.log in full.

A log call is an event for the terminal when it carries `extra=EVENT`, or when it is the bot's
own WARNING or above. Library records (ib_async's `Canceled order: Trade(...)` and the like)
never reach the terminal: run.log has them."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Any

EVENT: dict[str, Any] = {"event": True}
_OWN = "momentumbot"
_NOT_OURS = ("momentumbot.gateway",)  # an in-process simulated gateway is not the bot


def is_event(record: logging.LogRecord) -> bool:
    """Whether a record is one the terminal shows."""
    name = record.name
    if not (name == _OWN or name.startswith(_OWN + ".")) or name.startswith(_NOT_OURS):
        return False
    return record.levelno >= logging.WARNING or bool(getattr(record, "event", False))


def one_line(record: logging.LogRecord) -> str:
    """`HH:MM:SS LEVEL message` on one line: the first line of the message, no traceback."""
    text = record.getMessage().strip().splitlines()
    when = dt.datetime.fromtimestamp(record.created, dt.UTC).astimezone().strftime("%H:%M:%S")
    level = "" if record.levelno < logging.WARNING else f"{record.levelname} "
    return f"{when} {level}{text[0] if text else ''}"


class TerminalEvents(logging.Handler):
    """Writes the events as one line each through `write` (rich's console above the live
    table, or stderr)."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        super().__init__(level=logging.DEBUG)
        self._write = write or _stderr
        self.addFilter(is_event)

    def emit(self, record: logging.LogRecord) -> None:
        # a closed or broken terminal never stops trading, nor prints a traceback: run.log has it
        with contextlib.suppress(Exception):
            self._write(one_line(record))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def attach(write: Callable[[str], None] | None = None) -> TerminalEvents:
    """Show the bot's events on the terminal until `detach`."""
    handler = TerminalEvents(write)
    logging.getLogger(_OWN).addHandler(handler)
    return handler


def detach(handler: TerminalEvents) -> None:
    logging.getLogger(_OWN).removeHandler(handler)

"""What every piece of a trading run shares while it runs: the server's clock as the bot
knows it, how far it has dealt with the minutes, why it stops, the wake-up event of the
minute loop, and the run's counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pandas as pd

from momentumbot.domain.units import EXCHANGE_TZ
from momentumbot.notify import Event, Notifier


def ny(ns: int) -> str:
    """UTC ns as New York wall time, for logs and the console."""
    return pd.Timestamp(ns, tz="UTC").tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class RunStats:
    reconnects: int = 0
    outages: int = 0
    resubscribes: int = 0
    resent: int = 0
    adopted: int = 0
    rejected: int = 0
    stale_streams: int = 0
    step_seconds: list[float] = field(default_factory=list)


# RunState's fields whose setting is sent as an alert: (kind, title)
ALERTED = {
    "halted": (Event.HALTED, "halted: no new orders"),
    "buys_halted": (Event.HALTED, "new buys halted"),
    "fatal": (Event.RECONCILE_MISMATCH, "trading stopped"),
    "gave_up": (Event.RESYNC_GIVEN_UP, "resync given up (exit code 8)"),
}


@dataclass
class RunState:
    """The run's shared, mutable state; one object, passed to every piece."""

    server_ns: int = 0  # the server's clock: the latest time it told us
    progress_ns: int = 0  # every minute before it has been dealt with
    halted: str = ""  # why new orders are halted (the daily loss), "" if not
    buys_halted: str = ""  # why new buys are halted (sells rejected, the reject breaker)
    paused: str = ""  # why new entries are paused (the dashboard's pause), "" if not
    ended_halted: str = ""  # the run ended at a session's close because it was halted: why
    fatal: str = ""  # why trading stopped on something it cannot explain
    stop_reason: str = ""
    done: bool = False  # no more minutes: the loop ends
    stopping: bool = False  # a stop was asked for: flattening or cancelling
    failed: bool = False  # a fatal task failure: nothing reconnects any more
    gave_up: str = ""  # why the run stopped degraded (`trading.resync`: exit code 8)
    time_wanted: bool = True  # the loop asks the server's time at its next turn
    step_seq: int = 0  # how many times minutes were stepped (a time answer after it counts)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: RunStats = field(default_factory=RunStats)
    alerts: Notifier = field(default_factory=Notifier.off)  # the operator's alerts

    def __setattr__(self, name: str, value: object) -> None:
        """A halt or a fatal stop being recorded is also an alert (`momentumbot.notify`)."""
        if name in ALERTED and value and value != self.__dict__.get(name):
            alerts = self.__dict__.get("alerts")  # not there yet while __init__ runs
            if alerts is not None:
                kind, title = ALERTED[name]
                alerts.event(kind, title, str(value), key=f"{name}:{value}")
        super().__setattr__(name, value)

    def see_server_time(self, ns: int) -> None:
        self.server_ns = max(self.server_ns, ns)

    def kick_time(self) -> None:
        """Ask the server's time at the loop's next turn (a minute waits for it)."""
        self.time_wanted = True
        self.wake.set()

    @property
    def ended(self) -> bool:
        """Nothing should start again: the run is done, stopped on a mismatch, or failed."""
        return self.done or bool(self.fatal) or self.failed

"""The kinds of alert the bot sends, and one alert as it is queued."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Event(StrEnum):
    """What happened; the values are the names `[notify] events` lists."""

    RUN_STARTED = "run_started"
    RUN_STOPPED = "run_stopped"
    CONNECTIVITY_LOST = "connectivity_lost"
    CONNECTIVITY_RESTORED = "connectivity_restored"
    RESYNC_DEGRADED = "resync_degraded"
    RESYNC_GIVEN_UP = "resync_given_up"
    HALTED = "halted"
    SELL_REJECTED = "sell_rejected"
    RECONCILE_MISMATCH = "reconcile_mismatch"
    SESSION_SUMMARY = "session_summary"


# Apprise's notify types: the colour or icon a chat shows
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

SEVERITY: dict[Event, str] = {
    Event.RUN_STARTED: INFO,
    Event.RUN_STOPPED: INFO,
    Event.CONNECTIVITY_LOST: WARNING,
    Event.CONNECTIVITY_RESTORED: SUCCESS,
    Event.RESYNC_DEGRADED: WARNING,
    Event.RESYNC_GIVEN_UP: FAILURE,
    Event.HALTED: WARNING,
    Event.SELL_REJECTED: WARNING,
    Event.RECONCILE_MISMATCH: FAILURE,
    Event.SESSION_SUMMARY: INFO,
}

# never dropped by the per-minute cap: the last word of a run
UNCAPPED = frozenset({Event.RUN_STOPPED})


@dataclass(frozen=True)
class Alert:
    """One alert: plain short text, already scrubbed of secrets."""

    kind: Event
    title: str
    body: str
    key: str

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]

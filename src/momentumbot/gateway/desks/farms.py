"""The data farms desk: the state of the HMDS (historical data) farm. While it is down
(`hmds-down`, `hmds-down-after-restore`) history requests get 162 and keepUpToDate streams get
no bars; every client hears 2105 when it goes down and 2106 when it is back, and a client that
connects meanwhile is greeted with 2105 instead of 2106 (as TWS reports its farms)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from momentumbot.gateway.desks.sessions import SessionDesk
from momentumbot.gateway.market import NS
from momentumbot.gateway.record import Recorder

log = logging.getLogger("momentumbot.gateway")

HMDS_BROKEN = (2105, "HMDS data farm connection is broken:ushmds")
HMDS_OK = (2106, "HMDS data farm connection is OK:ushmds")


class FarmDesk:
    def __init__(self, sessions: SessionDesk, record: Recorder, now: Callable[[], int]) -> None:
        self.sessions = sessions
        self.record = record
        self.now = now
        self.down_until = 0  # market time the HMDS farm is back
        self._announced = False  # 2105 went out and 2106 has not yet

    def hmds_down(self) -> bool:
        return self.now() < self.down_until

    def take_hmds_down(self, seconds: float) -> int:
        """The farm is down for `seconds` market seconds from now (longer if it already was);
        the market time it comes back (the fault desk schedules `hmds_check` then)."""
        until = self.now() + int(seconds * NS)
        if until <= self.down_until:
            return self.down_until
        self.down_until = until
        self.record.note("hmds down", self.now(), seconds=seconds)
        log.warning("fault: HMDS farm down for %g market seconds", seconds)
        if not self._announced:
            self._announced = True
            self._tell(*HMDS_BROKEN)
        return until

    def hmds_check(self) -> None:
        """A scheduled end of a down time: 2106 if the farm is back now."""
        if self._announced and not self.hmds_down():
            self._announced = False
            self.record.note("hmds up", self.now())
            log.warning("fault: HMDS farm back")
            self._tell(*HMDS_OK)

    def bring_hmds_up(self) -> None:
        """Faults cleared: the farm is back at once."""
        self.down_until = 0
        self.hmds_check()

    def greeting(self) -> list[tuple[int, str]]:
        """The farm messages a client gets when it connects."""
        return [
            (2104, "Market data farm connection is OK:usfarm"),
            HMDS_BROKEN if self.hmds_down() else HMDS_OK,
            (2158, "Sec-def data farm connection is OK:secdefnj"),
        ]

    def _tell(self, code: int, text: str) -> None:
        for s in list(self.sessions.sessions):
            if s.ready and not s.closed:
                s.error(-1, code, text)
                s.flush()

"""Exchange sessions and the grid of regular-session minutes (bar labels = bar start, UTC)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE

# the calendar reaches back as far as exchange_calendars allows (XNYS: 1885), so minute data
# from any year works; it reaches forward to exchange_calendars' default end (about a year
# ahead: later dates are a clear error, see check_range)
_CAL_STARTS = ("1885-01-01", "1950-01-03", "1990-01-02", None)


@dataclass(frozen=True)
class MinuteGrid:
    """Every regular-session minute of a run of sessions, in order.

    `label_ns[i]` is the start of minute i (UTC ns); `session[i]` its index into
    `sessions`; `minute[i]` its position within that session (0 = the open).
    """

    sessions: pd.DatetimeIndex  # session dates (naive, midnight)
    open_ns: np.ndarray  # int64, one per session
    close_ns: np.ndarray  # int64, one per session
    label_ns: np.ndarray  # int64, one per minute
    session: np.ndarray  # int32, one per minute
    minute: np.ndarray  # int32, one per minute

    @property
    def n_minutes(self) -> int:
        return int(self.label_ns.shape[0])

    def session_slice(self, first: int, stop: int) -> MinuteGrid:
        """The grid of sessions [first, stop)."""
        lo = int(np.searchsorted(self.session, first, side="left"))
        hi = int(np.searchsorted(self.session, stop, side="left"))
        return MinuteGrid(
            sessions=self.sessions[first:stop],
            open_ns=self.open_ns[first:stop],
            close_ns=self.close_ns[first:stop],
            label_ns=self.label_ns[lo:hi],
            session=self.session[lo:hi] - first,
            minute=self.minute[lo:hi],
        )


def _ns(times: pd.Series) -> np.ndarray:
    """tz-aware timestamps to int64 UTC nanoseconds."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)


@lru_cache(maxsize=4)
def _calendar(name: str) -> xcals.ExchangeCalendar:
    for start in _CAL_STARTS:
        try:
            return xcals.get_calendar(name, start=start)
        except xcals.errors.InvalidCalendarName:
            raise ConfigError(f"session.calendar: unknown exchange calendar {name!r}") from None
        except ValueError:  # earlier than this calendar's bound: try a later start
            continue
    raise ConfigError(f"session.calendar: exchange calendar {name!r} cannot be built")


@lru_cache(maxsize=4)
def _bounds_ns(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every session's open and close (UTC ns) of one calendar, shared by all its instances."""
    sched = _calendar(name).schedule
    return _ns(sched["open"]), _ns(sched["close"])


class TradingCalendar:
    """Sessions, half days and holidays of one exchange."""

    def __init__(self, name: str = "XNYS") -> None:
        self.name = name
        self._cal = _calendar(name)

    @property
    def first_session(self) -> pd.Timestamp:
        return pd.Timestamp(self._cal.first_session)

    @property
    def last_session(self) -> pd.Timestamp:
        """The last session the calendar knows (exchange_calendars looks about a year ahead)."""
        return pd.Timestamp(self._cal.last_session)

    def sessions(self, start: dt.date | str | None, end: dt.date | str | None) -> pd.DatetimeIndex:
        """Sessions from start to end inclusive (either may be None for the calendar's bounds).

        Total: a range with no session in it (start after end, a weekend, a holiday, a range
        outside the calendar) is an empty answer, never an error. Callers that take a range
        from a user check it with `check_range` first."""
        first = pd.Timestamp(start) if start is not None else self._cal.first_session
        last = pd.Timestamp(end) if end is not None else self._cal.last_session
        first = max(first.normalize(), self._cal.first_session)
        last = min(last.normalize(), self._cal.last_session)
        if first > last:
            return pd.DatetimeIndex([])
        return self._cal.sessions_in_range(first, last)

    def check_range(self, start: pd.Timestamp, end: pd.Timestamp, what: str) -> None:
        """A clear error when a range asked for is reversed or leaves the calendar's dates."""
        if start > end:
            raise DataError(f"{what}: start {start.date()} is after end {end.date()}")
        lo, hi = self.first_session, self.last_session
        if start < lo or end > hi:
            raise DataError(
                f"{what}: {start.date()} to {end.date()} is outside the {self.name} calendar, "
                f"which knows sessions from {lo.date()} to {hi.date()} (exchange_calendars "
                f"{xcals.__version__}); choose dates inside it, or upgrade exchange_calendars "
                "for later dates"
            )

    def session_at_or_after(self, now_ns: int) -> pd.Timestamp | None:
        """The session open at `now_ns` (UTC ns) or the next one to open; None past the
        calendar's last session. Total over the time of day: before the open, in the
        session, after the close, at night, on a weekend or a holiday."""
        closes = self._closes_ns()
        idx = int(np.searchsorted(closes, now_ns, side="right"))
        if idx >= closes.shape[0]:
            return None
        return pd.Timestamp(self._cal.sessions[idx])

    def sessions_opened(self, since: pd.Timestamp, now_ns: int) -> pd.DatetimeIndex:
        """Sessions from day `since` on whose open is at or before `now_ns`: empty when the
        next session has not opened yet (at night, on a weekend, before the open)."""
        opens = self._opens_ns()
        sessions = self._cal.sessions
        lo = int(sessions.searchsorted(pd.Timestamp(since).normalize()))
        hi = int(np.searchsorted(opens, now_ns, side="right"))
        if hi <= lo:
            return pd.DatetimeIndex([])
        return sessions[lo:hi]

    def sessions_before(self, session: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The `count` sessions strictly before `session`."""
        idx = self._cal.sessions.searchsorted(session)
        return self._cal.sessions[max(0, idx - count) : idx]

    def session_of(self, ts_ns: np.ndarray) -> np.ndarray:
        """For each UTC ns timestamp, the index into all calendar sessions of the regular
        session containing it as a bar label, or -1 if it lies outside regular hours."""
        opens = self._opens_ns()
        closes = self._closes_ns()
        idx = np.searchsorted(opens, ts_ns, side="right") - 1
        ok = (idx >= 0) & (ts_ns < closes[np.clip(idx, 0, None)])
        return np.where(ok, idx, -1)

    def _opens_ns(self) -> np.ndarray:
        return _bounds_ns(self.name)[0]

    def _closes_ns(self) -> np.ndarray:
        return _bounds_ns(self.name)[1]

    def all_sessions(self) -> pd.DatetimeIndex:
        return self._cal.sessions

    def grid(self, sessions: pd.DatetimeIndex) -> MinuteGrid:
        """The minute grid of the given sessions."""
        sched = self._cal.schedule.loc[sessions]
        open_ns = _ns(sched["open"])
        close_ns = _ns(sched["close"])
        counts = ((close_ns - open_ns) // NS_PER_MINUTE).astype(np.int64)
        total = int(counts.sum())
        session = np.repeat(np.arange(len(sessions), dtype=np.int32), counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        minute = (np.arange(total, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)
        label_ns = np.repeat(open_ns, counts) + minute.astype(np.int64) * NS_PER_MINUTE
        return MinuteGrid(
            sessions=sessions,
            open_ns=open_ns,
            close_ns=close_ns,
            label_ns=label_ns,
            session=session,
            minute=minute,
        )


def to_exchange_time(ns: np.ndarray | int) -> pd.DatetimeIndex | pd.Timestamp:
    """UTC ns to New York wall time, for display only."""
    if isinstance(ns, (int, np.integer)):
        return pd.Timestamp(int(ns), tz="UTC").tz_convert(EXCHANGE_TZ)
    return pd.DatetimeIndex(np.asarray(ns, dtype="datetime64[ns]"), tz="UTC").tz_convert(
        EXCHANGE_TZ
    )

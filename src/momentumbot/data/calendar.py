"""Exchange sessions and the grid of regular-session minutes (bar labels = bar start, UTC).

Building an exchange calendar (exchange_calendars computes every holiday rule from 1885 on)
takes about a quarter of a second, more than a warm demo's whole engine; what a run uses of
it is three arrays (the sessions and their opens and closes), so those are kept in a small
file, ``<cache>/momentumbot/calendars/<key>.npz`` (``$XDG_CACHE_HOME`` or
``~/.cache``), and exchange_calendars is imported only to build one. The key is the
installed exchange_calendars (its path and modification time) and today's date (the
calendar reaches about a year past today), so a new day or an upgrade builds it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE

# the calendar reaches back as far as exchange_calendars allows (XNYS: 1885), so minute data
# from any year works; it reaches forward to exchange_calendars' default end (about a year
# ahead: later dates are a clear error, see check_range)
_CAL_STARTS = ("1885-01-01", "1950-01-03", "1990-01-02", None)
# a cached schedule of an earlier day is removed after two days (a run started just before
# midnight may still be reading yesterday's)
_KEEP_SECONDS = 2 * 86_400


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


@dataclass(frozen=True)
class Schedule:
    """What a run needs of an exchange calendar: every session (naive midnight dates, in
    order) and its open and close (UTC ns)."""

    sessions: pd.DatetimeIndex
    open_ns: np.ndarray  # int64, one per session
    close_ns: np.ndarray  # int64, one per session


def _build(name: str) -> Schedule:
    """The schedule from exchange_calendars (the slow part, about 0.25 s for XNYS)."""
    import exchange_calendars as xcals

    for start in _CAL_STARTS:
        try:
            cal = xcals.get_calendar(name, start=start)
        except xcals.errors.InvalidCalendarName:
            raise ConfigError(f"session.calendar: unknown exchange calendar {name!r}") from None
        except ValueError:  # earlier than this calendar's bound: try a later start
            continue
        sched = cal.schedule
        return _schedule_of(cal.sessions.asi8, _ns(sched["open"]), _ns(sched["close"]))
    raise ConfigError(f"session.calendar: exchange calendar {name!r} cannot be built")


def _cache_key(name: str) -> str | None:
    """Which installed exchange_calendars and which day; None when it is not installed."""
    spec = importlib.util.find_spec("exchange_calendars")
    if spec is None or spec.origin is None:
        return None
    try:
        stat = os.stat(spec.origin)
    except OSError:
        return None
    text = (
        f"{name}|{spec.origin}|{stat.st_mtime_ns}|{stat.st_size}|{dt.datetime.now(dt.UTC).date()}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_file(name: str, key: str) -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "momentumbot" / "calendars" / f"{key}.npz"


def _read(path: Path) -> Schedule | None:
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            days, opens, closes = data["sessions"], data["open_ns"], data["close_ns"]
    except Exception:  # missing, empty, cut short (zipfile.BadZipFile, EOFError), altered
        with contextlib.suppress(OSError):
            if path.exists():
                path.unlink()  # built again and written whole
        return None
    if not days.shape == opens.shape == closes.shape or days.shape[0] == 0:
        return None
    return _schedule_of(days, opens, closes)


def _schedule_of(days: np.ndarray, opens: np.ndarray, closes: np.ndarray) -> Schedule:
    """The same Schedule whether built or read (a plain index of dates, no frequency)."""
    sessions = pd.DatetimeIndex(np.asarray(days, dtype=np.int64).view("datetime64[ns]"))
    return Schedule(sessions, np.asarray(opens, dtype=np.int64), np.asarray(closes, dtype=np.int64))


def _write(path: Path, sched: Schedule) -> None:
    """Written whole or not at all (a temporary file renamed); files of earlier days go."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        stale = time.time() - _KEEP_SECONDS
        for old in path.parent.glob("*.npz"):
            with contextlib.suppress(OSError):
                if old != path and old.stat().st_mtime < stale:
                    old.unlink()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calendar-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    sessions=sched.sessions.asi8,
                    open_ns=sched.open_ns,
                    close_ns=sched.close_ns,
                )
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@lru_cache(maxsize=4)
def _schedule(name: str) -> Schedule:
    """One calendar's schedule, shared by all its instances: from the cache file when it is
    there for today, else built (and the file written)."""
    key = _cache_key(name)
    path = _cache_file(name, key) if key is not None else None
    if path is not None and (cached := _read(path)) is not None:
        return cached
    sched = _build(name)
    if path is not None:
        _write(path, sched)
    return sched


def _xcals_version() -> Any:
    import exchange_calendars as xcals

    return xcals.__version__


class TradingCalendar:
    """Sessions, half days and holidays of one exchange."""

    def __init__(self, name: str = "XNYS") -> None:
        self.name = name
        self._sched = _schedule(name)

    @property
    def first_session(self) -> pd.Timestamp:
        return pd.Timestamp(self._sched.sessions[0])

    @property
    def last_session(self) -> pd.Timestamp:
        """The last session the calendar knows (exchange_calendars looks about a year ahead)."""
        return pd.Timestamp(self._sched.sessions[-1])

    def sessions(self, start: dt.date | str | None, end: dt.date | str | None) -> pd.DatetimeIndex:
        """Sessions from start to end inclusive (either may be None for the calendar's bounds).

        Total: a range with no session in it (start after end, a weekend, a holiday, a range
        outside the calendar) is an empty answer, never an error. Callers that take a range
        from a user check it with `check_range` first."""
        days = self._sched.sessions
        first = pd.Timestamp(start) if start is not None else days[0]
        last = pd.Timestamp(end) if end is not None else days[-1]
        first = max(first.normalize(), days[0])
        last = min(last.normalize(), days[-1])
        if first > last:
            return pd.DatetimeIndex([])
        lo = int(days.searchsorted(first, side="left"))
        hi = int(days.searchsorted(last, side="right"))
        return days[lo:hi]

    def check_range(self, start: pd.Timestamp, end: pd.Timestamp, what: str) -> None:
        """A clear error when a range asked for is reversed or leaves the calendar's dates."""
        if start > end:
            raise DataError(f"{what}: start {start.date()} is after end {end.date()}")
        lo, hi = self.first_session, self.last_session
        if start < lo or end > hi:
            raise DataError(
                f"{what}: {start.date()} to {end.date()} is outside the {self.name} calendar, "
                f"which knows sessions from {lo.date()} to {hi.date()} (exchange_calendars "
                f"{_xcals_version()}); choose dates inside it, or upgrade exchange_calendars "
                "for later dates"
            )

    def session_at_or_after(self, now_ns: int) -> pd.Timestamp | None:
        """The session open at `now_ns` (UTC ns) or the next one to open; None past the
        calendar's last session. Total over the time of day: before the open, in the
        session, after the close, at night, on a weekend or a holiday."""
        closes = self._sched.close_ns
        idx = int(np.searchsorted(closes, now_ns, side="right"))
        if idx >= closes.shape[0]:
            return None
        return pd.Timestamp(self._sched.sessions[idx])

    def sessions_opened(self, since: pd.Timestamp, now_ns: int) -> pd.DatetimeIndex:
        """Sessions from day `since` on whose open is at or before `now_ns`: empty when the
        next session has not opened yet (at night, on a weekend, before the open)."""
        sessions = self._sched.sessions
        lo = int(sessions.searchsorted(pd.Timestamp(since).normalize()))
        hi = int(np.searchsorted(self._sched.open_ns, now_ns, side="right"))
        if hi <= lo:
            return pd.DatetimeIndex([])
        return sessions[lo:hi]

    def sessions_before(self, session: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The `count` sessions strictly before `session`."""
        sessions = self._sched.sessions
        idx = sessions.searchsorted(session)
        return sessions[max(0, idx - count) : idx]

    def session_of(self, ts_ns: np.ndarray) -> np.ndarray:
        """For each UTC ns timestamp, the index into all calendar sessions of the regular
        session containing it as a bar label, or -1 if it lies outside regular hours."""
        opens = self._sched.open_ns
        closes = self._sched.close_ns
        idx = np.searchsorted(opens, ts_ns, side="right") - 1
        ok = (idx >= 0) & (ts_ns < closes[np.clip(idx, 0, None)])
        return np.where(ok, idx, -1)

    def all_sessions(self) -> pd.DatetimeIndex:
        return self._sched.sessions

    def _positions(self, sessions: pd.DatetimeIndex) -> np.ndarray:
        """Each session's index in the calendar; KeyError for a day that is not a session."""
        at = self._sched.sessions.get_indexer(pd.DatetimeIndex(sessions))
        if (at < 0).any():
            missing = pd.DatetimeIndex(sessions)[at < 0]
            raise KeyError(f"not {self.name} sessions: {[str(d.date()) for d in missing[:5]]}")
        return at

    def grid(self, sessions: pd.DatetimeIndex) -> MinuteGrid:
        """The minute grid of the given sessions."""
        at = self._positions(sessions)
        open_ns = self._sched.open_ns[at]
        close_ns = self._sched.close_ns[at]
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

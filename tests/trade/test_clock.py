"""Every calendar and clock question of the live path is total over the time of day: before
the open, in the session, in the last minutes, after the close, after midnight, on a weekend,
on a holiday, on a half day. An empty range is an empty answer, never an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import DataError
from momentumbot.gateway.server import ny_ns
from momentumbot.trading.warmup import catchup_duration, check_calendar_covers, first_session

CAL = TradingCalendar("XNYS")
NS = 1_000_000_000


def ny(day: str, hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return ny_ns(pd.Timestamp(day), int(h), int(m))


# (moment, the session traded now or next, sessions opened since 2024-07-02)
MOMENTS = {
    "before the open": (ny("2024-07-02", "08:00"), "2024-07-02", 0),
    "at the open": (ny("2024-07-02", "09:30"), "2024-07-02", 1),
    "in the session": (ny("2024-07-02", "12:00"), "2024-07-02", 1),
    "the last minutes": (ny("2024-07-02", "15:58"), "2024-07-02", 1),
    "after the close": (ny("2024-07-02", "16:30"), "2024-07-03", 1),
    "after midnight": (ny("2024-07-03", "00:30"), "2024-07-03", 1),
    "the half day after its close": (ny("2024-07-03", "13:30"), "2024-07-05", 2),
    "the holiday": (ny("2024-07-04", "12:00"), "2024-07-05", 2),
    "a weekend": (ny("2024-07-06", "12:00"), "2024-07-08", 3),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_the_session_now_or_next_and_the_sessions_opened(moment: str) -> None:
    now, session, opened = MOMENTS[moment]
    assert CAL.session_at_or_after(now) == pd.Timestamp(session)
    assert len(CAL.sessions_opened(pd.Timestamp("2024-07-02"), now)) == opened
    # a range that starts tomorrow is empty, not an error
    tomorrow = pd.Timestamp(now, tz="UTC").tz_convert("America/New_York").tz_localize(None)
    assert len(CAL.sessions_opened(tomorrow.normalize() + pd.Timedelta(days=1), now)) == 0
    assert len(CAL.sessions(tomorrow.normalize() + pd.Timedelta(days=1), tomorrow)) == 0


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_the_resync_history_is_never_empty_and_never_raises(moment: str, tmp_path: Path) -> None:
    """A resubscribe after a reconnect at any time asks for the sessions since the engine's
    next minute plus one: the bug was a DataError at night ("start is after end")."""
    now, session, _ = MOMENTS[moment]
    nxt = CAL.grid(pd.DatetimeIndex([pd.Timestamp(session)])).open_ns[0]
    days = int(catchup_duration(CAL, int(nxt), now).split()[0])
    opened_since_next = len(CAL.sessions_opened(pd.Timestamp(session), now))
    assert days == opened_since_next + 1
    assert first_session(CAL, now) == pd.Timestamp(session)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=ny("2023-11-20", "00:00"), max_value=ny("2024-12-31", "23:59")))
def test_session_at_or_after_is_the_first_session_not_closed_yet(now: int) -> None:
    s = CAL.session_at_or_after(now)
    assert s is not None
    days = CAL.sessions(s - pd.Timedelta(days=10), s + pd.Timedelta(days=10))
    grid = CAL.grid(days)
    i = list(days).index(s)
    assert now < grid.close_ns[i]
    assert i == 0 or grid.close_ns[i - 1] <= now
    opened = CAL.sessions_opened(pd.Timestamp("2023-11-01"), now)
    if len(opened):
        last = CAL.grid(opened[-1:]).open_ns[0]
        assert last <= now
        assert opened[-1] == s or opened[-1] < s


def test_past_the_calendar_is_a_clear_error(tmp_path: Path) -> None:
    last = CAL.last_session
    server_ns = int(pd.Timestamp(last + pd.Timedelta(days=3), tz="UTC").value)
    with pytest.raises(DataError, match="upgrade exchange_calendars"):
        check_calendar_covers(CAL, server_ns, 5)
    with pytest.raises(DataError, match="no session after"):
        first_session(CAL, server_ns)
    with pytest.raises(DataError, match="outside the XNYS calendar"):
        CAL.check_range(pd.Timestamp("1850-01-02"), pd.Timestamp("1850-02-01"), "--start/--end")
    with pytest.raises(DataError, match="start 2024-02-01 is after end 2024-01-02"):
        CAL.check_range(pd.Timestamp("2024-02-01"), pd.Timestamp("2024-01-02"), "--start/--end")


def test_a_backtest_outside_the_calendar_is_one_line(tmp_path: Path, capsys: Any) -> None:
    from momentumbot.cli import main
    from tests.trade.harness import synthetic_store

    synthetic_store(tmp_path / "store", ["AAA"], "2024-01-02", 2)
    far = (CAL.last_session + pd.Timedelta(days=400)).date()
    code = main(["backtest", "--store", str(tmp_path / "store"), "--symbols", "AAA",
                 "--start", "2024-01-02", "--end", str(far), "--out", str(tmp_path / "bt")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err
    assert "outside the XNYS calendar" in err and "Traceback" not in err

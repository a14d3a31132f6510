"""The exchange calendar's schedule kept on disk: the same sessions, opens and closes as
exchange_calendars builds, and a damaged file is built again rather than trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from momentumbot.data import calendar as calendar_module
from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import ConfigError


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calendar_module._schedule.cache_clear()
    yield tmp_path
    calendar_module._schedule.cache_clear()


def _files(home: Path) -> list[Path]:
    return sorted((home / "momentumbot" / "calendars").glob("*.npz"))


def test_a_cached_calendar_is_the_one_exchange_calendars_builds(cache_home: Path) -> None:
    built = TradingCalendar("XNYS")
    assert len(_files(cache_home)) == 1
    calendar_module._schedule.cache_clear()
    cached = TradingCalendar("XNYS")  # read from the file
    reference = xcals.get_calendar("XNYS", start="1885-01-01")
    for cal in (built, cached):
        assert cal.all_sessions().equals(reference.sessions)
        assert cal.first_session == reference.first_session
        assert cal.last_session == reference.last_session
        days = cal.sessions("2024-11-01", "2024-12-31")
        assert days.equals(reference.sessions_in_range("2024-11-01", "2024-12-31"))
        grid = cal.grid(days)
        sched = reference.schedule.loc[days]
        opens = sched["open"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
        assert np.array_equal(grid.open_ns, opens.view(np.int64))
        # the half days (Nov 29, Dec 24) close at 13:00 New York time
        minutes = np.bincount(grid.session)
        assert sorted(set(minutes.tolist())) == [210, 390]


@pytest.mark.parametrize("damage", ["altered", "cut short", "empty"])
def test_a_damaged_cache_file_is_built_again(cache_home: Path, damage: str) -> None:
    """Whatever is left of the file (a crash while writing it, a full disk), the calendar
    is built again and written whole."""
    TradingCalendar("XNYS")
    (path,) = _files(cache_home)
    whole = path.read_bytes()
    path.write_bytes(
        {"altered": b"not a numpy file", "cut short": whole[: len(whole) // 2], "empty": b""}[
            damage
        ]
    )
    calendar_module._schedule.cache_clear()
    cal = TradingCalendar("XNYS")
    assert cal.first_session == pd.Timestamp("1885-01-01")
    assert path.stat().st_size > 1000  # written again


def test_a_day_that_is_no_session_is_a_key_error(cache_home: Path) -> None:
    with pytest.raises(KeyError, match="2024-01-06"):
        TradingCalendar("XNYS").grid(pd.DatetimeIndex(["2024-01-05", "2024-01-06"]))


def test_an_unknown_calendar_is_a_config_error(cache_home: Path) -> None:
    with pytest.raises(ConfigError, match="unknown exchange calendar"):
        TradingCalendar("NOPE")
    assert _files(cache_home) == []

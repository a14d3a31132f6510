"""The synthetic bar generator: deterministic, independent per symbol, and plausible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import BarStore, check_symbol
from momentumbot.data.synthetic import (
    default_symbols,
    generate_bars,
    synthetic_sessions,
    write_synthetic,
)
from momentumbot.domain.errors import DataError

CAL = TradingCalendar("XNYS")
NY = "America/New_York"


@pytest.fixture(scope="module")
def sessions() -> pd.DatetimeIndex:
    # late 2024: includes the 13:00 half days of Nov 29 and Dec 24
    return synthetic_sessions("2024-11-01", 40, CAL)


@pytest.fixture(scope="module")
def frames(sessions: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    return generate_bars(default_symbols(40), sessions, seed=7, calendar=CAL)


def test_default_symbols_are_distinct_valid_tickers() -> None:
    names = default_symbols(1200)
    assert len(set(names)) == 1200
    assert names[:2] == ["SYN0001", "SYN0002"]
    assert default_symbols(3) == ["SYN001", "SYN002", "SYN003"]
    for name in names:
        check_symbol(name)


def test_same_seed_same_bars(sessions: pd.DatetimeIndex, frames: dict[str, pd.DataFrame]) -> None:
    again = generate_bars(["SYN003", "SYN001"], sessions, seed=7, calendar=CAL)
    for sym, frame in again.items():
        pd.testing.assert_frame_equal(frame, frames[sym])


def test_other_symbols_do_not_change_a_symbols_bars(
    sessions: pd.DatetimeIndex, frames: dict[str, pd.DataFrame]
) -> None:
    mixed = generate_bars(["ZZZ", "SYN005", "AAA"], sessions, seed=7, calendar=CAL)
    pd.testing.assert_frame_equal(mixed["SYN005"], frames["SYN005"])


def test_different_seed_different_bars(
    sessions: pd.DatetimeIndex, frames: dict[str, pd.DataFrame]
) -> None:
    other = generate_bars(["SYN001"], sessions, seed=8, calendar=CAL)["SYN001"]
    assert not other["close"].equals(frames["SYN001"]["close"])


def test_bars_are_consistent_and_in_the_write_schema(frames: dict[str, pd.DataFrame]) -> None:
    for frame in frames.values():
        assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume"]
        assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
        assert frame["volume"].dtype == np.int64
        o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
        assert (lo > 0).all()
        assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
        for prices in (o, h, lo, c):
            np.testing.assert_allclose(prices, np.round(prices, 2), rtol=0, atol=1e-9)
        assert (frame["volume"] > 0).all()
        assert frame["ts"].is_monotonic_increasing and frame["ts"].is_unique


def test_only_regular_session_minutes_and_half_days(frames: dict[str, pd.DataFrame]) -> None:
    for frame in frames.values():
        ts = frame["ts"].astype("int64").to_numpy()
        assert CAL.session_of(ts).min() >= 0
    local = frames["SYN001"]["ts"].dt.tz_convert(NY)
    last = local.groupby(local.dt.date).max()
    assert last[pd.Timestamp("2024-11-29").date()].strftime("%H:%M") == "12:59"
    assert last[pd.Timestamp("2024-11-27").date()].strftime("%H:%M") == "15:59"


def test_price_levels_liquidity_and_shapes_vary(frames: dict[str, pd.DataFrame]) -> None:
    first_open = np.array([f["open"].iloc[0] for f in frames.values()])
    assert first_open.min() >= 5 and first_open.max() <= 500
    assert first_open.max() / first_open.min() > 10
    minute_counts = {s: len(f) for s, f in frames.items()}
    full = max(minute_counts.values())
    thin = [s for s, n in minute_counts.items() if n < 0.9 * full]
    assert 1 <= len(thin) <= 12  # a few thin names with missing minutes
    # U-shaped volume: the first and last half hour trade more than midday
    f = frames["SYN002"]
    minute = (f["ts"].dt.tz_convert(NY).dt.hour * 60 + f["ts"].dt.tz_convert(NY).dt.minute) - 570
    open_vol = f["volume"][minute < 30].mean()
    mid_vol = f["volume"][(minute >= 150) & (minute < 240)].mean()
    close_vol = f["volume"][(minute >= 360) & (minute < 390)].mean()
    assert open_vol > 1.5 * mid_vol and close_vol > 1.5 * mid_vol


def test_intraday_moves_are_big_enough_for_the_band(frames: dict[str, pd.DataFrame]) -> None:
    # the strategy steps in 1 % rungs: most symbols must move more than that intraday
    ranges = []
    for f in frames.values():
        day = f["ts"].dt.tz_convert(NY).dt.date
        g = f.groupby(day)
        ranges.append(float((g["high"].max() / g["low"].min() - 1).median()))
    assert np.median(ranges) > 0.015
    assert max(ranges) < 0.15


def test_write_synthetic_round_trips_through_the_store(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    written = write_synthetic(store, ["SYN001", "SYN002"], "2024-01-02", 3, seed=7)
    assert written == ["SYN001", "SYN002"]
    expect = generate_bars(["SYN001"], synthetic_sessions("2024-01-02", 3), seed=7)["SYN001"]
    pd.testing.assert_frame_equal(store.read("SYN001"), expect)
    again = write_synthetic(store, ["SYN001"], "2024-01-02", 3, seed=7)
    assert again == ["SYN001"]
    with pytest.raises(DataError, match="differs from the stored SYN001 bar"):
        write_synthetic(store, ["SYN001"], "2024-01-02", 3, seed=9)


def test_bad_generator_arguments() -> None:
    with pytest.raises(DataError, match="at least 1 symbol"):
        default_symbols(0)
    with pytest.raises(DataError, match="at least 1 session"):
        synthetic_sessions("2024-01-02", 0)
    with pytest.raises(DataError, match="not a date"):
        synthetic_sessions("next tuesday", 5)
    with pytest.raises(DataError, match="choose an earlier --start"):
        synthetic_sessions("2024-01-02", 100_000)

"""data check: planted gaps, duplicates, broken bars, zero volume and jumps are found; clean is clean."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from momentumbot.cli import main
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.importers import import_files
from momentumbot.data.quality import Thresholds, assess, check_store
from momentumbot.data.store import SCHEMA, BarStore

# three sessions, the middle one a half day (Independence Day eve closes at 13:00)
SESSIONS = ("2024-07-02", "2024-07-03", "2024-07-05")
FULL_MINUTES = 390 + 210 + 390


@pytest.fixture(scope="module")
def calendar() -> TradingCalendar:
    return TradingCalendar("XNYS")


def clean_bars(calendar: TradingCalendar, seed: int = 3) -> pd.DataFrame:
    """A bar at every regular-session minute, prices moving a few basis points at a time."""
    grid = calendar.grid(pd.DatetimeIndex(list(SESSIONS)))
    n = grid.n_minutes
    rng = np.random.default_rng(seed)
    close = np.round(50.0 * np.exp(np.cumsum(rng.normal(0, 0.0005, n))), 2)
    open_ = np.r_[50.0, close[:-1]]
    return pd.DataFrame(
        {
            "ts": grid.label_ns,
            "open": open_,
            "high": np.maximum(open_, close) + 0.01,
            "low": np.minimum(open_, close) - 0.01,
            "close": close,
            "volume": rng.integers(100, 5000, n).astype(np.int64),
        }
    )


def write_raw(store: BarStore, symbol: str, bars: pd.DataFrame) -> None:
    """Write a bar file as is, past the store's checks (the way a damaged file looks)."""
    store.bars_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_arrays(
        [
            pa.array(bars["ts"].to_numpy(np.int64)).cast(pa.timestamp("ns", tz="UTC")),
            *(pa.array(bars[c].to_numpy(np.float64)) for c in ("open", "high", "low", "close")),
            pa.array(bars["volume"].to_numpy(np.int64)),
        ],
        schema=SCHEMA,
    )
    pq.write_table(table, store.path(symbol))


def ny(day: str, hhmm: str) -> int:
    return int(pd.Timestamp(f"{day} {hhmm}", tz="America/New_York").tz_convert("UTC").value)


def planted(calendar: TradingCalendar) -> pd.DataFrame:
    bars = clean_bars(calendar)
    ts = bars["ts"].to_numpy()
    # gaps: 10:00-10:04 of the first session, and the whole half day
    gap = (ts >= ny("2024-07-02", "10:00")) & (ts < ny("2024-07-02", "10:05"))
    half_day = (ts >= ny("2024-07-03", "09:30")) & (ts < ny("2024-07-03", "13:00"))
    bars = bars.loc[~gap & ~half_day].reset_index(drop=True)
    ts = bars["ts"].to_numpy()
    prices = ["open", "high", "low", "close"]
    # a 10% level shift at 14:00 of the first session: one jump inside the session
    shift = (ts >= ny("2024-07-02", "14:00")) & (ts < ny("2024-07-03", "00:00"))
    bars.loc[shift, prices] = (bars.loc[shift, prices] * 1.10).round(2)
    bars.loc[np.flatnonzero(shift)[0], "open"] = bars.loc[np.flatnonzero(shift)[0] - 1, "close"]
    bars.loc[np.flatnonzero(shift)[0], "low"] = bars.loc[np.flatnonzero(shift)[0], "open"]
    # a 30% gap overnight into the last session (the half day between is missing)
    last = ts >= ny("2024-07-05", "09:30")
    bars.loc[last, prices] = (bars.loc[last, prices] * 1.10 * 1.30).round(2)
    # zero volume on three bars
    bars.loc[[20, 21, 500], "volume"] = 0
    # duplicates: one identical bar, one bar at a stored time with another price
    dup_same = bars.iloc[[100]]
    dup_other = bars.iloc[[101]].copy()
    dup_other["volume"] += 7
    # one broken bar: low above high
    bars.loc[300, "low"] = bars.loc[300, "high"] + 0.5
    return pd.concat([bars, dup_same, dup_other], ignore_index=True)


def test_clean_set_reports_clean(tmp_path: Path, calendar: TradingCalendar) -> None:
    store = BarStore(tmp_path)
    store.write(
        "CLEAN", clean_bars(calendar).assign(ts=lambda f: pd.to_datetime(f["ts"], utc=True))
    )
    (r,) = check_store(store, calendar=calendar)
    assert r.status == "clean" and not r.problems() and not r.findings()
    assert (r.bars, r.sessions_expected, r.sessions_covered) == (FULL_MINUTES, 3, 3)
    assert r.covered_minutes == FULL_MINUTES and r.missing_bars == 0
    assert r.largest_jump_pct < 1.0


def test_planted_defects_are_found(tmp_path: Path, calendar: TradingCalendar) -> None:
    store = BarStore(tmp_path)
    bars = planted(calendar)
    write_raw(store, "BAD", bars)
    (r,) = check_store(store, calendar=calendar)
    assert r.sessions_expected == 3 and r.sessions_covered == 2 and r.sessions_missing == 1
    assert r.missing_bars == 5 + 210
    assert r.first_missing_ns == ny("2024-07-02", "10:00")
    assert r.duplicates == 2 and r.first_duplicate_ns == int(bars["ts"][100])
    assert r.invalid == 1 and r.unordered == 1  # the duplicates were appended at the end
    assert r.zero_volume == 3
    assert r.jumps == 1 and r.overnight_jumps == 1
    before, after = (
        bars.set_index("ts")
        .loc[[ny("2024-07-02", "15:59"), ny("2024-07-05", "09:30")]]
        .iloc[:2]
        .to_dict("records")
    )
    assert r.largest_jump_pct == pytest.approx(
        100 * (after["open"] / before["close"] - 1), abs=1e-3
    )
    assert r.largest_jump_ns == ny("2024-07-05", "09:30")
    assert r.problems() == ["2 duplicates", "1 out of order", "1 invalid bar"]
    assert r.findings() == [
        "1 session missing", "215 bars missing", "3 zero-volume bars", "2 jumps",
    ]  # fmt: skip


def test_thresholds_and_span(calendar: TradingCalendar) -> None:
    bars = clean_bars(calendar)
    ts, o, h, lo, c, v = (
        bars[c].to_numpy() for c in ("ts", "open", "high", "low", "close", "volume")
    )
    cols = (ts, o, h, lo, c, v)
    # any move counts as a jump at a 0% threshold
    loose = assess("X", *cols, calendar, Thresholds(jump_pct=0.0, overnight_jump_pct=0.0))
    assert loose.jumps > 100
    # a wider span expected than the bars cover: the sessions around it are missing
    wide = assess("X", *cols, calendar, start="2024-07-01", end="2024-07-08")
    assert (wide.sessions_expected, wide.sessions_missing) == (5, 2)
    assert wide.missing_bars == 2 * 390


def test_cli_check_table_csv_and_exit_codes(
    tmp_path: Path, calendar: TradingCalendar, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BarStore(tmp_path / "store")
    write_raw(store, "BAD", planted(calendar))
    write_raw(store, "GOOD", clean_bars(calendar, seed=4))
    out_csv = tmp_path / "out" / "check.csv"
    code = main(["data", "check", "--store", str(store.root), "--csv", str(out_csv)])
    out, err = capsys.readouterr()
    assert code == 3
    assert "BAD" in out and "GOOD" in out and "clean" in out
    assert "1 of 2 symbol files are damaged" in err and "2 duplicates" in err
    with open(out_csv, newline="") as fh:
        rows = {r["symbol"]: r for r in csv.DictReader(fh)}
    assert rows["BAD"]["missing_bars"] == "215" and rows["BAD"]["duplicates"] == "2"
    assert rows["BAD"]["first_missing"] == "2024-07-02T14:00:00+00:00"
    assert rows["GOOD"]["status"] == "clean" and rows["GOOD"]["first_missing"] == ""
    code = main(["data", "check", "--store", str(store.root), "--symbols", "GOOD"])
    out, _ = capsys.readouterr()
    assert code == 0 and "OK (1 symbols, 990 bars); all clean" in out
    code = main(["data", "check", "--store", str(store.root), "--symbols", "NOPE"])
    _, err = capsys.readouterr()
    assert code == 3 and "no bars for NOPE" in err


def test_real_thin_symbol_has_gaps_and_no_defects(shared_data: Path, tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    files = [
        shared_data / "eqker_alphavantage_2019-02" / f"{s}_1min.csv.gz" for s in ("SPY", "PPLT")
    ]
    import_files(store, files, fmt="alphavantage")
    by = {r.symbol: r for r in check_store(store)}
    assert by["SPY"].sessions_covered == 5 and by["SPY"].missing_bars == 0
    assert by["SPY"].findings() == ["1 zero-volume bar"] and not by["SPY"].problems()
    assert not by["PPLT"].problems() and by["PPLT"].missing_bars == 5 * 390 - 566

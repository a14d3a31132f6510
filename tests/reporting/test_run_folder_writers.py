"""The run folder's writers: background CSV formatting gives the same bytes as writing in
the caller, in order, and a failure reaches the caller; the figures read the engine's
categorical columns (each distinct value stored once) exactly as plain columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.domain.errors import DataError
from momentumbot.engine.results import _iso
from momentumbot.engine.time_text import known_times
from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.metrics import compute_figures, fill_tables, pnl_by_symbol, round_trips

from .test_metrics import NO_FILLS, TRADES, bar_closes, equity_frame


def _allocation_part(first_minute: int, minutes: int, symbols: int) -> pd.DataFrame:
    rng = np.random.default_rng(first_minute)
    first = pd.Timestamp("2024-01-02 14:31") + pd.Timedelta(minutes=first_minute * minutes)
    times = pd.date_range(first, periods=minutes, freq="min").to_numpy()
    n = minutes * symbols
    score = rng.lognormal(10.0, 1.0, n)
    score[::7] = np.nan  # symbols without a score print an empty field
    text = np.char.add(np.datetime_as_string(times, unit="s"), "+00:00")
    return pd.DataFrame(
        {
            "time": pd.Categorical(np.repeat(text, symbols)),
            "symbol": pd.Categorical(np.tile([f"S{i:02d}" for i in range(symbols)], minutes)),
            "score": score,
            "budget": rng.uniform(0.0, 20_000.0, n),
            "target_shares": rng.integers(0, 500, n),
        }
    )


def test_a_background_stream_writes_the_bytes_write_csv_writes(tmp_path: Path) -> None:
    parts = [_allocation_part(k, 30, 7) for k in range(4)]
    stream = rf.CsvStream(tmp_path / "allocations.csv", rf.ALLOCATIONS_COLUMNS, background=True)
    for part in parts:
        stream.write(part)
    assert not (tmp_path / "allocations.csv").exists()  # moved into place on close only
    stream.close()
    whole = pd.concat([p.astype({"time": str, "symbol": str}) for p in parts], ignore_index=True)
    rf.write_csv(whole, tmp_path / "expected.csv", rf.ALLOCATIONS_COLUMNS)
    written = (tmp_path / "allocations.csv").read_bytes()
    assert written == (tmp_path / "expected.csv").read_bytes()
    assert stream.rows == 4 * 30 * 7
    assert written.count(b"\n") == 1 + 4 * 30 * 7
    assert stream.seconds > 0


def test_a_stream_with_no_rows_writes_the_header(tmp_path: Path) -> None:
    stream = rf.CsvStream(tmp_path / "allocations.csv", rf.ALLOCATIONS_COLUMNS, background=True)
    stream.close()
    assert (tmp_path / "allocations.csv").read_text() == ",".join(rf.ALLOCATIONS_COLUMNS) + "\n"


def test_an_aborted_stream_leaves_no_file(tmp_path: Path) -> None:
    stream = rf.CsvStream(tmp_path / "allocations.csv", rf.ALLOCATIONS_COLUMNS, background=True)
    stream.write(_allocation_part(0, 5, 3))
    stream.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_background_write_reaches_the_caller(tmp_path: Path) -> None:
    files = rf.BackgroundWriter()
    files.csv(TRADES, tmp_path / "no-such-folder" / "fills.csv")
    files.csv(TRADES, tmp_path / "fills.csv")
    with pytest.raises(FileNotFoundError):
        files.close()
    assert (tmp_path / "fills.csv").is_file()  # the files after it were still written


def _as_engine_writes(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The same table as the engine hands it over: ISO time strings and names as categoricals."""
    out = frame.copy()
    for col in columns:
        values = out[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.map(lambda t: t.isoformat())
        out[col] = pd.Categorical(values)
    return out


def test_figures_of_categorical_tables_equal_those_of_plain_ones() -> None:
    fills = _as_engine_writes(TRADES, ("time", "symbol", "side"))
    assert isinstance(fills["time"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(round_trips(fills), round_trips(TRADES))
    positions, prices = {"AAA": 10, "BBB": 0}, {"AAA": 13.0, "BBB": 19.5}
    pd.testing.assert_frame_equal(
        pnl_by_symbol(fills, positions, prices), pnl_by_symbol(TRADES, positions, prices)
    )
    days = ("2024-01-02", "2024-01-03")
    equity = equity_frame(bar_closes(days, 2), (100.0, 101.0, 99.0, 103.0))
    plain = compute_figures(equity, TRADES, start_equity=100.0)
    engine = compute_figures(_as_engine_writes(equity, ("time",)), fills, start_equity=100.0)
    assert engine == plain
    assert engine["round_trips"] == 2


def test_the_engines_own_time_columns_give_the_figures_and_bytes_of_their_text(
    tmp_path: Path,
) -> None:
    """The engine's time columns are read from the ns it formatted them from and written
    from the Arrow text it made (engine.time_text): the same figures and the same bytes as
    a column of the same strings parsed and converted anew."""
    days = ("2024-01-02", "2024-01-03")
    equity = equity_frame(bar_closes(days, 2), (100.0, 101.0, 99.0, 103.0))
    ns = pd.DatetimeIndex(equity["time"]).as_unit("ns").asi8
    engine = equity.assign(time=_iso(ns[[0, 1, 1, 3]]))  # one time twice: codes, not rows
    plain = engine.assign(time=pd.Categorical(np.asarray(engine["time"], dtype=object)))
    assert known_times(engine["time"].array.categories) is not None
    assert known_times(plain["time"].array.categories) is None
    figures = compute_figures(engine, NO_FILLS, start_equity=100.0)
    assert figures == compute_figures(plain, NO_FILLS, start_equity=100.0)
    assert figures["max_drawdown_trough"] == "2024-01-02T14:32:00+00:00"
    rf.write_csv(engine, tmp_path / "engine.csv")
    rf.write_csv(plain, tmp_path / "plain.csv")
    assert (tmp_path / "engine.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert b"\n2024-01-02T14:32:00+00:00,99,0,99\n" in (tmp_path / "engine.csv").read_bytes()


def test_a_bad_side_in_a_categorical_column_is_still_refused() -> None:
    fills = _as_engine_writes(TRADES, ("time", "symbol", "side"))
    fills["side"] = fills["side"].cat.rename_categories({"SELL": "SHORT"})
    with pytest.raises(DataError, match="SHORT"):
        round_trips(fills)


def test_a_stream_the_worker_cannot_write_fails_at_close(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    stream = rf.CsvStream(missing / "allocations.csv", rf.ALLOCATIONS_COLUMNS, background=True)
    stream.write(_allocation_part(0, 5, 3))  # returns at once; the worker fails on its own
    with pytest.raises(FileNotFoundError):
        stream.close()
    assert list(tmp_path.iterdir()) == []


def test_fill_tables_are_pnl_by_symbol_and_round_trips() -> None:
    positions, prices = {"AAA": 10, "BBB": 0}, {"AAA": 13.0, "BBB": 19.5}
    for fills in (TRADES, _as_engine_writes(TRADES, ("time", "symbol", "side")), NO_FILLS):
        held = positions if len(fills) else {}
        by_symbol, trips = fill_tables(fills, held, prices)
        pd.testing.assert_frame_equal(by_symbol, pnl_by_symbol(fills, held, prices))
        pd.testing.assert_frame_equal(trips, round_trips(fills))

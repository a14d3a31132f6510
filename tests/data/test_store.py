"""The Parquet bar store: round trips, merges, validation, atomicity, windowed reads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from momentumbot.data.store import ROW_GROUP_ROWS, BarStore, WriteReport
from momentumbot.domain.errors import DataError
from tests.data.conftest import file_state, make_bars


def test_round_trip_keeps_values_and_schema(store: BarStore) -> None:
    bars = make_bars(50)
    report = store.write("ABC", bars, source="mem")
    assert report == WriteReport("ABC", 50, 0, 50)
    back = store.read("ABC")
    assert list(back.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    assert back["volume"].dtype == np.int64
    pd.testing.assert_frame_equal(back, bars)
    schema = pq.read_schema(store.path("ABC"))
    assert str(schema.field("ts").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("volume").type) == "int64"


def test_symbols_info_and_absent_symbol(store: BarStore) -> None:
    assert store.symbols() == []
    store.write("ZED", make_bars(3))
    store.write("ABC", make_bars(5, "2024-01-03 14:30"))
    assert store.symbols() == ["ABC", "ZED"]
    assert store.has("ABC") and not store.has("XYZ")
    info = store.info("ABC")
    assert info.rows == 5
    assert info.first_ns == pd.Timestamp("2024-01-03 14:30", tz="UTC").value
    assert info.last_ns == pd.Timestamp("2024-01-03 14:34", tz="UTC").value
    with pytest.raises(DataError, match="no bars for XYZ"):
        store.info("XYZ")


def test_unsorted_input_is_stored_sorted(store: BarStore) -> None:
    bars = make_bars(20)
    store.write("ABC", bars.iloc[::-1])
    pd.testing.assert_frame_equal(store.read("ABC"), bars)


def test_int64_timestamps_are_accepted(store: BarStore) -> None:
    bars = make_bars(5)
    raw = bars.assign(ts=bars["ts"].astype("int64"))
    store.write("ABC", raw)
    pd.testing.assert_frame_equal(store.read("ABC"), bars)


def test_read_window_is_half_open(store: BarStore) -> None:
    bars = make_bars(10)
    store.write("ABC", bars)
    start, end = bars["ts"].iloc[2].value, bars["ts"].iloc[5].value
    got = store.read("ABC", start, end)
    pd.testing.assert_frame_equal(got, bars.iloc[2:5].reset_index(drop=True))
    assert len(store.read("ABC", end_ns=bars["ts"].iloc[0].value)) == 0
    assert len(store.read_arrays("ABC", 0, 1).ts) == 0


def test_read_arrays_matches_read_and_prunes_row_groups(
    store: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 5 * ROW_GROUP_ROWS + 123
    bars = make_bars(n, "2024-01-02 00:00")
    store.write("ABC", bars)
    assert pq.ParquetFile(store.path("ABC")).metadata.num_row_groups == 6

    read_groups: list[list[int]] = []
    original = pq.ParquetFile.read_row_groups

    def spy(self: pq.ParquetFile, row_groups: list[int], *args: object, **kw: object) -> object:
        read_groups.append(list(row_groups))
        return original(self, row_groups, *args, **kw)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    lo, hi = 2 * ROW_GROUP_ROWS + 10, 2 * ROW_GROUP_ROWS + 500
    start, end = int(bars["ts"].iloc[lo].value), int(bars["ts"].iloc[hi].value)
    arrays = store.read_arrays("ABC", start, end)
    assert read_groups[-1] == [2]
    frame = store.read("ABC", start, end)
    assert arrays.ts.dtype == np.int64 and arrays.volume.dtype == np.float64
    np.testing.assert_array_equal(arrays.ts, frame["ts"].astype("int64").to_numpy())
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(arrays, name), frame[name].to_numpy())
    np.testing.assert_array_equal(arrays.volume, frame["volume"].to_numpy().astype(float))
    assert arrays.ts[0] == start and len(arrays.ts) == hi - lo

    whole = store.read_arrays(
        "ABC", int(bars["ts"].iloc[0].value), int(bars["ts"].iloc[-1].value) + 1
    )
    assert len(whole.ts) == n and np.all(np.diff(whole.ts) > 0)


def test_reimport_is_idempotent_and_leaves_file_alone(store: BarStore) -> None:
    bars = make_bars(30)
    store.write("ABC", bars)
    before = file_state(store.path("ABC"))
    report = store.write("ABC", bars)
    assert report == WriteReport("ABC", 0, 30, 30)
    assert file_state(store.path("ABC")) == before


def test_overlapping_import_adds_only_new_rows(store: BarStore) -> None:
    bars = make_bars(30)
    store.write("ABC", bars.iloc[:20])
    report = store.write("ABC", bars.iloc[10:])
    assert report == WriteReport("ABC", 10, 10, 30)
    pd.testing.assert_frame_equal(store.read("ABC"), bars)


def test_conflicting_reimport_is_refused_and_store_unchanged(store: BarStore) -> None:
    bars = make_bars(30)
    store.write("ABC", bars)
    before = file_state(store.path("ABC"))
    changed = bars.copy()
    changed.loc[7, "volume"] += 1
    with pytest.raises(DataError) as err:
        store.write("ABC", changed, source="again.csv")
    msg = str(err.value)
    assert "\n" not in msg
    assert "again.csv" in msg and "row 8" in msg and "2024-01-02T14:37:00+00:00" in msg
    assert "replace" in msg
    assert file_state(store.path("ABC")) == before


def test_replace_lets_new_values_win(store: BarStore) -> None:
    bars = make_bars(30)
    store.write("ABC", bars)
    changed = bars.copy()
    changed.loc[7, "volume"] += 1
    report = store.write("ABC", changed, replace=True)
    assert report.total == 30 and report.unchanged == 29
    pd.testing.assert_frame_equal(store.read("ABC"), changed)


def _broken(rule: str) -> pd.DataFrame:
    bars = make_bars(10)
    bars["line"] = np.arange(2, 12)  # as a CSV importer passes them: header on line 1
    if rule == "nan price":
        bars.loc[4, "close"] = np.nan
    elif rule == "negative price":
        bars.loc[4, ["open", "low"]] = -1.0
    elif rule == "low above open":
        bars.loc[4, "low"] = bars.loc[4, "open"] + 0.01
        bars.loc[4, "high"] = bars.loc[4, "low"] + 1
        bars.loc[4, "close"] = bars.loc[4, "high"]
    elif rule == "close above high":
        bars.loc[4, "close"] = bars.loc[4, "high"] + 0.5
    elif rule == "duplicate timestamp":
        bars.loc[4, "ts"] = bars.loc[3, "ts"]
    elif rule == "negative volume":
        bars.loc[4, "volume"] = -5
    elif rule == "fractional volume":
        bars["volume"] = bars["volume"].astype(float)
        bars.loc[4, "volume"] = 10.5
    elif rule == "seconds in timestamp":
        bars.loc[4, "ts"] = bars.loc[4, "ts"] + pd.Timedelta(seconds=30)
    elif rule == "infinite price":
        bars.loc[4, "high"] = np.inf
    return bars


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("nan price", "price is missing or not finite"),
        ("infinite price", "price is missing or not finite"),
        ("negative price", "price is not positive"),
        ("low above open", "low is above open"),
        ("close above high", "close is above high"),
        ("duplicate timestamp", "duplicate timestamp"),
        ("negative volume", "volume is negative"),
        ("fractional volume", "volume is not a whole number"),
        ("seconds in timestamp", "not on a whole minute"),
    ],
)
def test_bad_bars_are_refused_with_file_line_and_rule(
    store: BarStore, rule: str, expected: str
) -> None:
    good = make_bars(5, "2024-01-01 14:30")
    store.write("ABC", good)
    before = file_state(store.path("ABC"))
    with pytest.raises(DataError) as err:
        store.write("ABC", _broken(rule), source="bars.csv")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("bars.csv: line 6: ")
    assert expected in msg
    assert file_state(store.path("ABC")) == before
    assert [p.name for p in store.bars_dir.iterdir()] == ["ABC.parquet"]


def test_first_broken_rule_in_source_order_is_reported(store: BarStore) -> None:
    bars = make_bars(10)
    bars.loc[7, "volume"] = -1
    bars.loc[3, "close"] = np.nan
    with pytest.raises(DataError, match=r"row 4: price is missing"):
        store.write("ABC", bars)


def test_bad_frame_creates_no_file(store: BarStore) -> None:
    with pytest.raises(DataError):
        store.write("ABC", _broken("nan price"), source="x.csv")
    assert not store.has("ABC")


def test_naive_timestamps_and_missing_columns_are_refused(store: BarStore) -> None:
    bars = make_bars(3)
    with pytest.raises(DataError, match="row 2: the timestamp is missing"):
        store.write("ABC", bars.assign(ts=bars["ts"].where(bars.index != 1)))
    with pytest.raises(DataError, match="no time zone"):
        store.write("ABC", bars.assign(ts=bars["ts"].dt.tz_localize(None)))
    with pytest.raises(DataError, match="missing column"):
        store.write("ABC", bars.drop(columns="volume"))


@pytest.mark.parametrize("symbol", ["aapl", "1ABC", "TOOLONGTICKER", "A B", "", "SPY/X"])
def test_invalid_symbols_are_refused(store: BarStore, symbol: str) -> None:
    with pytest.raises(DataError, match="invalid symbol"):
        store.write(symbol, make_bars(3))


def test_valid_symbols(store: BarStore) -> None:
    for symbol in ("A", "BRK.B", "BF-B", "SYN001"):
        store.write(symbol, make_bars(2))
    assert store.symbols() == ["A", "BF-B", "BRK.B", "SYN001"]


def test_write_many_is_all_or_nothing(store: BarStore) -> None:
    store.write("OLD", make_bars(4))
    before = file_state(store.path("OLD"))
    with pytest.raises(DataError, match=r"two\.csv: line 6"):
        store.write_many(
            [
                ("NEW", make_bars(5), "one.csv"),
                ("OLD", _broken("negative volume"), "two.csv"),
            ]
        )
    assert not store.has("NEW")
    assert file_state(store.path("OLD")) == before


def test_write_many_merges_items_of_one_symbol_in_order(store: BarStore) -> None:
    bars = make_bars(20)
    reports = store.write_many([("ABC", bars.iloc[:12], "a"), ("ABC", bars.iloc[8:], "b")])
    assert reports == [WriteReport("ABC", 12, 0, 12), WriteReport("ABC", 8, 4, 20)]
    pd.testing.assert_frame_equal(store.read("ABC"), bars)


def test_failed_write_leaves_old_file_and_no_temp_file(
    store: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = make_bars(10)
    store.write("ABC", bars.iloc[:5])
    before = file_state(store.path("ABC"))

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write("ABC", bars)
    assert file_state(store.path("ABC")) == before
    assert sorted(p.name for p in store.bars_dir.iterdir()) == ["ABC.parquet"]


def test_store_reads_files_written_by_another_instance(tmp_path: Path) -> None:
    a, b = BarStore(tmp_path), BarStore(tmp_path)
    bars = make_bars(10)
    a.write("ABC", bars.iloc[:5])
    assert b.info("ABC").rows == 5
    a.write("ABC", bars)
    assert b.info("ABC").rows == 10  # b's metadata cache notices the new file
    assert len(b.read("ABC")) == 10


def test_cached_metadata_follows_a_replaced_file_of_the_same_time_and_size(
    tmp_path: Path,
) -> None:
    """Another process deletes a symbol's file and imports other bars afresh, within the file
    system's time resolution and to the same size: the reader must see the new file's bars,
    not its cached row groups."""
    a, b = BarStore(tmp_path), BarStore(tmp_path)
    old = make_bars(10)
    new = old.assign(ts=old["ts"] + pd.Timedelta(days=1))
    a.write("ABC", old)
    path = a.path("ABC")
    st = path.stat()
    assert b.info("ABC").first_ns == old["ts"].iloc[0].value
    path.unlink()
    time.sleep(0.05)  # past the file system's clock tick, which ctime (and mtime) move by
    a.write("ABC", new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size  # the case the check is for
    assert path.stat().st_mtime_ns == st.st_mtime_ns
    assert b.info("ABC").first_ns == new["ts"].iloc[0].value
    pd.testing.assert_frame_equal(b.read("ABC"), new)


def test_check_accepts_good_files_and_names_bad_ones(store: BarStore) -> None:
    bars = make_bars(10)
    store.write("ABC", bars)
    assert store.check("ABC").rows == 10
    bad = pa.Table.from_pandas(bars.assign(low=bars["low"] + 100.0), preserve_index=False)
    pq.write_table(bad, store.path("ABC"))
    with pytest.raises(DataError, match=r"ABC\.parquet: row 1: low is above high"):
        store.check("ABC")
    pq.write_table(pa.table({"ts": [1], "price": [1.0]}), store.path("ABC"))
    with pytest.raises(DataError, match="unexpected columns"):
        store.check("ABC")

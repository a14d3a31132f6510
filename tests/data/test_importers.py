"""Importers: every source normalised to UTC start-labelled bars, with file and line in errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.importers import (
    detect_label,
    import_files,
    read_alphavantage,
    read_bars_file,
    symbol_from_filename,
)
from momentumbot.data.store import BarStore
from momentumbot.domain.errors import ConfigError, DataError
from tests.data.conftest import file_state

NY = "America/New_York"
CAL = TradingCalendar("XNYS")


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def av_rows(day: str, first: str, last: str, price: float = 10.0) -> list[str]:
    """Alpha Vantage style rows (newest first) for a NY-time minute range of one day."""
    times = pd.date_range(f"{day} {first}", f"{day} {last}", freq="min")
    return [
        f"{t:%Y-%m-%d %H:%M:%S},{price},{price + 0.1},{price - 0.1},{price},100"
        for t in times[::-1]
    ]


def av_file(path: Path, *days: tuple[str, str, str], header: str = "timestamp") -> Path:
    rows: list[str] = []
    for day in sorted(days, reverse=True):
        rows += av_rows(*day)
    return write(path, f"{header},open,high,low,close,volume\n" + "\n".join(rows) + "\n")


# ---- generic CSV


def test_csv_naive_times_are_read_in_new_york(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-07-01 09:30:00,10,11,9,10.5,100\n"
        "2024-07-01 09:31:00,10.5,11,10,10.75,200\n",
    )
    (got,) = read_bars_file(path, symbol="abc")
    assert got.symbol == "ABC" and got.label == "start"
    assert list(got.bars["ts"]) == [utc("2024-07-01 13:30"), utc("2024-07-01 13:31")]
    assert list(got.bars["line"]) == [2, 3]
    assert got.bars["close"].tolist() == [10.5, 10.75]


def test_csv_aliases_case_and_offsets(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        "DateTime,Open,High,Low,Close,Volume,Extra\n"
        "2024-01-02T09:30:00-05:00,10,11,9,10.5,100,x\n"
        "2024-01-02T14:31:00Z,10,11,9,10.5,100,y\n",
    )
    (got,) = read_bars_file(path, symbol="ABC", tz="Asia/Tokyo")  # offsets win over --tz
    assert list(got.bars["ts"]) == [utc("2024-01-02 14:30"), utc("2024-01-02 14:31")]


def test_csv_separate_date_and_time_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        "date,time,open,high,low,close,volume\n2024-01-02,09:30,10,11,9,10.5,100\n",
    )
    (got,) = read_bars_file(path, symbol="ABC")
    assert got.bars["ts"].iloc[0] == utc("2024-01-02 14:30")


def test_csv_end_label_shifts_to_start(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv.gz",
        "time,open,high,low,close,volume\n2024-01-02 09:31,10,11,9,10.5,100\n",
    )
    (got,) = read_bars_file(path, symbol="ABC", label="end")
    assert got.label == "end"
    assert got.bars["ts"].iloc[0] == utc("2024-01-02 14:30")


def test_csv_headerless_semicolons_with_time_format(tmp_path: Path) -> None:
    path = write(
        tmp_path / "nt.csv",
        "20110103 143100;126.71;126.74;126.66;126.72;2259046\n"
        "20110103 143200;126.72;126.79;126.69;126.79;815728\n",
    )
    (got,) = read_bars_file(path, symbol="SPY", tz="UTC", label="end", time_format="%Y%m%d %H%M%S")
    assert got.bars["ts"].iloc[0] == utc("2011-01-03 14:30")
    assert list(got.bars["line"]) == [1, 2]


def test_csv_headerless_commas(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "2024-01-02 09:30,10,11,9,10.5,100\n")
    (got,) = read_bars_file(path, symbol="ABC")
    assert got.bars["ts"].iloc[0] == utc("2024-01-02 14:30")


def test_csv_symbol_column_splits_symbols_and_symbol_option_selects(tmp_path: Path) -> None:
    path = write(
        tmp_path / "multi.csv",
        "symbol,datetime,open,high,low,close,volume\n"
        "aaa,2024-01-02 09:30,10,11,9,10.5,100\n"
        "BBB,2024-01-02 09:30,20,21,19,20.5,100\n"
        "aaa,2024-01-02 09:31,10,11,9,10.5,100\n",
    )
    got = {b.symbol: b for b in read_bars_file(path)}
    assert set(got) == {"AAA", "BBB"}
    assert list(got["AAA"].bars["line"]) == [2, 4]
    (only,) = read_bars_file(path, symbol="BBB")
    assert only.symbol == "BBB" and len(only.bars) == 1
    with pytest.raises(DataError, match="no bars for CCC"):
        read_bars_file(path, symbol="CCC")


def test_csv_without_symbol_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv", "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n"
    )
    with pytest.raises(DataError, match="pass --symbol"):
        read_bars_file(path)


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 09:30,10,11,9,10.5,100\n"
        "\n"
        "2024-01-02 09:31,10,11,9,abc,100\n",
    )
    with pytest.raises(DataError, match=r"x.csv: line 4: column close: 'abc' is not a number"):
        read_bars_file(path, symbol="ABC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "timestamp,open,high,low,close\n2024-01-02 09:30,1,1,1,1\n",
            r"line 1: missing column\(s\) volume",
        ),
        (
            "when,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n",
            r"line 1: missing column\(s\) timestamp",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n2024-01-02 09:31,1,x1,1,1,1\n",
            r"line 3: column high: 'x1' is not a number",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n2024-01-02 09:31,1,1,,1,1\n",
            r"line 3: column low is empty",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n2024-13-02 09:31,1,1,1,1,1\n",
            r"line 3: cannot read timestamp '2024-13-02 09:31'",
        ),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n2024-01-02 09:31,1,1,1,1,1,7\n",
            r"malformed CSV: .*line 3",
        ),
        ("timestamp,open,high,low,close,volume\n", r"has no bars"),
        (
            "timestamp,open,high,low,close,volume\n2024-01-02T09:30-05:00,1,1,1,1,1\n2024-01-02 09:31,1,1,1,1,1\n",
            r"line 3: timestamp '2024-01-02 09:31' has no UTC offset",
        ),
        ("", r"the file is empty"),
        ("20240102 0930;1;1;1;1\n", r"line 1: a file without header needs 6 columns"),
        (
            "timestamp,open,high,low,close,volume\n2024-03-10 02:30,1,1,1,1,1\n",
            r"line 2: 2024-03-10 02:30 does not exist or is ambiguous in America/New_York",
        ),
    ],
)
def test_malformed_csv_names_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=expected) as err:
        read_bars_file(path, symbol="ABC")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(path))


def test_bad_bar_in_csv_reports_csv_line_and_store_unchanged(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    good = write(
        tmp_path / "good.csv", "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n"
    )
    import_files(store, [good], symbol="ABC")
    before = file_state(store.path("ABC"))
    bad = write(
        tmp_path / "bad.csv",
        "timestamp,open,high,low,close,volume\n"
        "2024-01-02 09:31,1,1,1,1,1\n"
        "2024-01-02 09:32,1,1,1,1,1\n"
        "2024-01-02 09:33,-1,1,-1,1,1\n",
    )
    with pytest.raises(DataError, match=r"bad.csv: line 4: price is not positive"):
        import_files(store, [good, bad], symbol="ABC")
    dup = write(
        tmp_path / "dup.csv",
        "timestamp,open,high,low,close,volume\n2024-01-02 09:31,1,1,1,1,1\n2024-01-02 09:31,1,1,1,1,1\n",
    )
    with pytest.raises(
        DataError, match=r"dup.csv: line 3: duplicate timestamp .* \(also at line 2\)"
    ):
        import_files(store, [dup], symbol="ABC")
    assert file_state(store.path("ABC")) == before


def test_unknown_time_zone_is_a_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv", "timestamp,open,high,low,close,volume\n2024-01-02 09:30,1,1,1,1,1\n"
    )
    with pytest.raises(ConfigError, match="unknown time zone"):
        read_bars_file(path, symbol="ABC", tz="Mars/Olympus")


def test_daily_and_15_minute_files_are_refused(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-02", periods=12)
    daily = "\n".join(f"{d:%Y-%m-%d},1,1,1,1,1" for d in days)
    path = write(tmp_path / "d.csv", "date,open,high,low,close,volume\n" + daily + "\n")
    with pytest.raises(DataError, match="looks like daily bars"):
        read_bars_file(path, symbol="ABC")
    q = pd.date_range("2024-01-02 09:45", periods=20, freq="15min")
    path = write(
        tmp_path / "q.csv",
        "timestamp,open,high,low,close,volume\n" + "\n".join(f"{t},1,1,1,1,1" for t in q),
    )
    with pytest.raises(DataError, match="looks like 15-minute bars"):
        read_bars_file(path, symbol="ABC")


# ---- Alpha Vantage and label detection


def test_av_start_labelled_file_is_detected(tmp_path: Path) -> None:
    path = av_file(
        tmp_path / "ABC_1min.csv",
        ("2024-01-02", "09:30", "15:59"),
        ("2024-01-03", "09:30", "15:59"),
    )
    got = read_alphavantage(path)
    assert got.symbol == "ABC" and got.label == "start"
    assert got.bars["ts"].min() == utc("2024-01-02 14:30")
    assert got.bars["ts"].max() == utc("2024-01-03 20:59")


def test_av_end_labelled_file_is_detected_and_shifted(tmp_path: Path) -> None:
    path = av_file(
        tmp_path / "ABC_1min.csv.gz",
        ("2019-02-11", "09:31", "16:00"),
        ("2019-02-12", "09:45", "15:50"),  # a thin day with neither: says nothing
        header="datetime",
    )
    got = read_alphavantage(path)
    assert got.label == "end"
    assert got.bars["ts"].min() == utc("2019-02-11 14:30")
    assert (got.bars["ts"] < utc("2019-02-11 21:00")).sum() == 390


def test_av_half_day_uses_the_early_close(tmp_path: Path) -> None:
    path = av_file(tmp_path / "ABC_1min.csv", ("2024-11-29", "09:31", "13:00"))
    got = read_alphavantage(path)
    assert got.label == "end" and got.bars["ts"].max() == utc("2024-11-29 17:59")


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ((("2024-01-02", "09:30", "16:00"),), "both at the open and at the close"),
        ((("2024-01-02", "09:30", "15:59"), ("2024-01-03", "09:31", "16:00")), "sessions disagree"),
        ((("2024-01-02", "09:40", "15:40"),), "no session has a bar at the open or at the close"),
        ((("2024-01-06", "09:30", "15:59"),), "no bar falls in a regular session"),  # a Saturday
    ],
)
def test_av_ambiguous_files_are_refused(
    tmp_path: Path, days: tuple[tuple[str, str, str], ...], expected: str
) -> None:
    path = av_file(tmp_path / "ABC_1min.csv", *days)
    with pytest.raises(DataError, match=expected) as err:
        read_alphavantage(path)
    assert "--label start or --label end" in str(err.value)
    assert "\n" not in str(err.value)


def test_av_label_can_be_forced(tmp_path: Path) -> None:
    path = av_file(tmp_path / "ABC_1min.csv", ("2024-01-02", "09:30", "16:00"))
    got = read_alphavantage(path, label="end")
    assert got.bars["ts"].min() == utc("2024-01-02 14:29")


def test_av_json_error_response_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ABC_1min.csv",
        '{\n "Note": "Thank you for using Alpha Vantage! rate limit"\n}\n',
    )
    with pytest.raises(DataError, match="JSON response"):
        read_alphavantage(path)


def test_av_needs_a_header(tmp_path: Path) -> None:
    path = write(tmp_path / "ABC_1min.csv", "2024-01-02 09:30:00,1,1,1,1,1\n")
    with pytest.raises(DataError, match="no header"):
        read_alphavantage(path)


def test_detect_label_on_arrays() -> None:
    opens = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-03 09:30"]).tz_localize(NY).as_unit("ns")
    ts = np.sort(np.concatenate([opens.asi8, opens.asi8 + 60_000_000_000]))
    assert detect_label(ts, CAL) == "start"
    assert detect_label(ts + 390 * 60_000_000_000, CAL) == "end"  # 16:00 and 16:01 bars


def test_symbol_from_filename() -> None:
    assert symbol_from_filename("/x/AAPL_1min.csv.gz") == "AAPL"
    assert symbol_from_filename("spy.csv") == "SPY"


# ---- the real minute sets in ../shared/data


def test_alpha_vantage_set_imports_start_labelled(shared_data: Path, tmp_path: Path) -> None:
    files = sorted((shared_data / "eqker_alphavantage_2019-02").glob("*_1min.csv.gz"))
    assert len(files) == 24
    store = BarStore(tmp_path / "store")
    results = import_files(store, files, fmt="alphavantage", calendar=CAL)
    assert {r.label for r in results} == {"end"}
    assert len(store.symbols()) == 24
    assert sum(r.added for r in results) == 43_164
    full_days = 0
    for sym in store.symbols():
        bars = store.read(sym)
        local = bars["ts"].dt.tz_convert(NY)
        assert CAL.session_of(bars["ts"].astype("int64").to_numpy()).min() >= 0  # all regular
        hhmm = local.dt.strftime("%H:%M")
        assert "16:00" not in set(hhmm)
        for _, day in hhmm.groupby(local.dt.date):
            if len(day) == 390:
                full_days += 1
                assert day.iloc[0] == "09:30" and day.iloc[-1] == "15:59"
    assert full_days >= 24
    spy = store.read("SPY")
    first = spy.iloc[0]
    assert first["ts"] == pd.Timestamp("2019-02-11 09:30", tz=NY)
    assert (first["open"], first["close"], first["volume"]) == (271.19, 271.34, 1488804)
    again = import_files(store, files, fmt="alphavantage", calendar=CAL)
    assert sum(r.added for r in again) == 0 and sum(r.unchanged for r in again) == 43_164


def test_lean_minute_set_imports_start_labelled(shared_data: Path, tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    results = import_files(store, [shared_data / "lean_equity_minute" / "trade_bars_1min.csv.gz"])
    assert sum(r.added for r in results) == 20_311
    assert len(store.symbols()) == 10
    spy = store.read("SPY", utc("2013-10-04 13:30").value, utc("2013-10-04 13:31").value)
    assert spy["ts"].iloc[0] == utc("2013-10-04 13:30")  # 09:30 EDT, the opening bar
    assert spy.iloc[0][["open", "high", "low", "close"]].tolist() == [
        167.74,
        167.82,
        167.67,
        167.77,
    ]
    assert spy["volume"].iloc[0] == 633958
    assert store.info("SPY").first_ns == utc("2013-10-04 08:06").value  # pre-market kept


def test_pyalgotrade_set_imports_with_utc_end_labels(shared_data: Path, tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    files = sorted((shared_data / "pyalgotrade_spy_minute_2011").glob("*.csv.gz"))
    results = import_files(
        store, files, symbol="SPY", tz="UTC", label="end", time_format="%Y%m%d %H%M%S"
    )
    assert sum(r.added for r in results) == 14_180 + 17_577
    jan = store.read("SPY", utc("2011-01-03 14:30").value, utc("2011-01-03 14:31").value)
    assert jan.iloc[0].tolist()[1:] == [126.71, 126.74, 126.66, 126.72, 2259046]  # stamped 14:31
    mar = store.read("SPY", utc("2011-03-14 13:30").value, utc("2011-03-14 13:31").value)
    assert mar.iloc[0].tolist()[1:] == [129.99, 130.1, 129.95, 130.03, 1197395]  # after DST

"""Readers of provider files (generic CSV, Alpha Vantage) into UTC, start-labelled 1-minute bars."""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import (
    NS_PER_MINUTE,
    PRICE_COLUMNS,
    SYMBOL_PATTERN,
    BarStore,
)
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ

Label = Literal["start", "end", "auto"]
Format = Literal["csv", "alphavantage"]
FORMATS: tuple[str, ...] = ("csv", "alphavantage")
LABELS: tuple[str, ...] = ("start", "end", "auto")

TIMESTAMP_ALIASES = ("timestamp", "datetime", "date_time", "date", "time")
REQUIRED = (*PRICE_COLUMNS, "volume")
EXPECTED_HEADER = "timestamp,open,high,low,close,volume"
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


class ImportedBars(NamedTuple):
    """One symbol's bars read from one file, normalised: ts UTC bar start, sorted or not."""

    symbol: str
    source: str
    label: Literal["start", "end"]  # the label convention of the file (bars are start now)
    bars: pd.DataFrame  # ts (datetime64[ns, UTC]), open, high, low, close, volume, line


class ImportResult(NamedTuple):
    symbol: str
    file: str
    label: str
    added: int
    unchanged: int
    total: int
    first_ns: int
    last_ns: int


# ---- reading the raw file


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _first_line(path: Path, gz: bool) -> str:
    try:
        opener = gzip.open if gz else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            for raw in fh:
                if raw.strip():
                    return raw.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    raise DataError(f"{path}: the file is empty; expected a header {EXPECTED_HEADER} and bars")


def _separator(line: str) -> str:
    counts = {sep: line.count(sep) for sep in (",", ";", "\t")}
    sep = max(counts, key=lambda k: counts[k])
    return sep if counts[sep] else ","


def _header_fields(line: str, sep: str) -> list[str] | None:
    """Lower-cased header names, or None when the first line is already a bar."""
    fields = [f.strip().strip('"').strip() for f in next(csv.reader([line], delimiter=sep))]
    first = fields[0] if fields else ""
    if first[:1].isdigit():
        return None
    return [f.lower() for f in fields]


class _RawFrame(NamedTuple):
    frame: pd.DataFrame  # columns ts (str), open..volume, optional symbol; `line` column
    header: bool


def _read_raw(path: Path, *, require_header: bool, fmt_name: str) -> _RawFrame:
    gz = _is_gzip(path)
    first = _first_line(path, gz)
    if first.lstrip().startswith("{"):
        raise DataError(
            f"{path}: line 1: this is a JSON response, not CSV (an Alpha Vantage error or rate-limit "
            f"note?): {first.strip()[:120]}"
        )
    sep = _separator(first)
    names = _header_fields(first, sep)
    rename: dict[str, str] = {}
    if names is None:
        if require_header:
            raise DataError(
                f"{path}: line 1: no header; an {fmt_name} file starts with {EXPECTED_HEADER}"
            )
        n_fields = len(next(csv.reader([first], delimiter=sep)))
        if n_fields != 6:
            raise DataError(
                f"{path}: line 1: a file without header needs 6 columns "
                f"(timestamp, open, high, low, close, volume), found {n_fields}"
            )
        header_arg: int | None = None
        col_names: list[str] | None = ["ts", *REQUIRED]
        usecols: list[str] | None = None
        dtypes: dict[str, type] = {"ts": str}
    else:
        found = next((a for a in TIMESTAMP_ALIASES if a in names), None)
        missing = [c for c in REQUIRED if c not in names]
        if found is None:
            missing.insert(0, "timestamp")
        if missing or found is None:
            raise DataError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} in the header "
                f"({','.join(names)}); expected {EXPECTED_HEADER} (datetime, date or time may "
                "name the timestamp; an optional symbol column)"
            )
        stamp: str = found
        date_and_time = stamp == "date" and "time" in names
        header_arg = 0
        col_names = names
        keep = [*REQUIRED, "symbol", stamp]
        if date_and_time:
            keep.append("time")
        usecols = [n for n in names if n in keep]  # dropped after reading, see below
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise DataError(
                f"{path}: line 1: column(s) {', '.join(dupes)} appear twice in the header"
            )
        dtypes = {stamp: str, "symbol": str}
        if date_and_time:
            dtypes["time"] = str
        rename = {stamp: "ts"}
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=header_arg,
            names=col_names,
            low_memory=False,  # no usecols: pandas then reports rows with too many fields
            dtype=dtypes,
            skip_blank_lines=False,
            compression="gzip" if gz else None,
            encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file has no bars") from None
    except pd.errors.ParserError as exc:
        msg = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: malformed CSV: {msg}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None
    if names is not None and rename.get("date") == "ts" and "time" in frame.columns:
        frame["date"] = frame["date"].astype(str) + " " + frame.pop("time").astype(str)
    if usecols is not None:
        frame = frame[[c for c in frame.columns if c in usecols]]
    frame = frame.rename(columns=rename)
    offset = 2 if header_arg == 0 else 1
    frame["line"] = np.arange(offset, offset + len(frame), dtype=np.int64)
    blank = frame.drop(columns="line").isna().all(axis=1)
    if blank.any():
        frame = frame.loc[~blank.to_numpy()]
    if frame.empty:
        raise DataError(f"{path}: the file has no bars")
    return _RawFrame(frame, header_arg == 0)


def _numbers(frame: pd.DataFrame, path: Path) -> dict[str, np.ndarray]:
    """Price and volume columns as float64; a DataError names the first unreadable cell."""
    out: dict[str, np.ndarray] = {}
    lines = frame["line"].to_numpy()
    for name in REQUIRED:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            bad_text = np.zeros(len(values), dtype=bool)
        else:
            text = col.astype("string").str.strip()
            values = pd.to_numeric(text, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad_text = (
                np.isnan(values) & text.notna().to_numpy() & (text != "").fillna(False).to_numpy()
            )
        missing = np.isnan(values) & ~bad_text
        bad_rows = np.flatnonzero(bad_text | missing)
        if bad_rows.size:
            k = int(bad_rows[0])
            if bad_text[k]:
                raise DataError(
                    f"{path}: line {lines[k]}: column {name}: {col.iloc[k]!r} is not a number"
                )
            raise DataError(f"{path}: line {lines[k]}: column {name} is empty")
        out[name] = values
    return out


def _timestamps(frame: pd.DataFrame, path: Path, tz: str, time_format: str | None) -> np.ndarray:
    """The ts column as int64 UTC ns; naive times are read in `tz`, offsets are kept."""
    lines = frame["line"].to_numpy()
    text = frame["ts"].astype("string").str.strip()
    missing = text.isna().to_numpy() | (text == "").fillna(True).to_numpy()
    if missing.any():
        raise DataError(f"{path}: line {lines[int(np.argmax(missing))]}: the timestamp is empty")
    sample = str(text.iloc[0])
    has_offset = time_format is None and bool(_OFFSET.search(sample))
    if has_offset:
        # with utc=True pandas would read a naive time among offset ones as UTC: refuse the mix
        naive = ~text.str.contains(_OFFSET.pattern, regex=True).fillna(False).to_numpy(dtype=bool)
        if naive.any():
            k = int(np.argmax(naive))
            raise DataError(
                f"{path}: line {lines[k]}: timestamp {text.iloc[k]!r} has no UTC offset but "
                f"line {lines[0]} has one; give every timestamp an offset, or none"
            )
    try:
        parsed = pd.to_datetime(
            text, format=time_format or "ISO8601", errors="coerce", utc=has_offset
        )
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read the timestamps ({exc})") from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        k = int(np.argmax(bad))
        hint = (
            f"expected format {time_format!r}"
            if time_format
            else "expected ISO 8601 like 2019-02-15 16:00:00; pass --time-format for others"
        )
        raise DataError(f"{path}: line {lines[k]}: cannot read timestamp {text.iloc[k]!r} ({hint})")
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
        try:
            parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"--tz: unknown time zone {tz!r} ({exc})") from None
        bad = parsed.isna().to_numpy()
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(
                f"{path}: line {lines[k]}: {text.iloc[k]} does not exist or is ambiguous in {tz} "
                "(daylight-saving change); give timestamps with a UTC offset or in UTC (--tz UTC)"
            )
    return pd.DatetimeIndex(parsed).tz_convert("UTC").as_unit("ns").asi8.copy()


def _check_minute_bars(ts_ns: np.ndarray, path: Path) -> None:
    """Refuse daily or 15-minute files: the store holds 1-minute bars only."""
    if ts_ns.size < 10:
        return
    steps = np.diff(np.unique(ts_ns))
    if steps.size and not (steps == NS_PER_MINUTE).any():
        common = int(np.median(steps)) // NS_PER_MINUTE
        what = "daily" if common >= 24 * 60 else f"{common}-minute"
        raise DataError(
            f"{path}: no two bars are one minute apart; this looks like {what} bars, and the "
            "store holds 1-minute bars only"
        )


def detect_label(
    ts_ns: np.ndarray, calendar: TradingCalendar, source: str = "<memory>"
) -> Literal["start", "end"]:
    """The bar label convention of a file's bars, from its regular sessions.

    A session with a bar at the open (09:30) and none at the close (16:00, or the early close)
    is start-labelled; one with a bar at the close and none at the open is end-labelled.
    Sessions with neither say nothing. The file is refused as ambiguous when no session
    decides, when a session has both, or when sessions disagree.
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    touched = np.concatenate(
        [calendar.session_of(ts_ns), calendar.session_of(ts_ns - NS_PER_MINUTE)]
    )
    touched = np.unique(touched[touched >= 0])
    force = "force the convention with --label start or --label end"
    if touched.size == 0:
        raise DataError(
            f"{source}: cannot detect the bar label: no bar falls in a regular session; {force}"
        )
    sessions = calendar.all_sessions()[touched]
    grid = calendar.grid(sessions)
    has_open = np.isin(grid.open_ns, ts_ns)
    has_close = np.isin(grid.close_ns, ts_ns)
    start = has_open & ~has_close
    end = has_close & ~has_open
    both = has_open & has_close

    def days(mask: np.ndarray) -> str:
        picked = sessions[mask]
        shown = ", ".join(d.strftime("%Y-%m-%d") for d in picked[:3])
        return shown + (", ..." if len(picked) > 3 else "")

    if both.any():
        raise DataError(
            f"{source}: ambiguous bar label: {int(both.sum())} session(s) have bars both at the "
            f"open and at the close ({days(both)}), as with extended hours; {force}"
        )
    if start.any() and end.any():
        raise DataError(
            f"{source}: ambiguous bar label: sessions disagree ({int(start.sum())} look "
            f"start-labelled, e.g. {days(start)}; {int(end.sum())} end-labelled, e.g. "
            f"{days(end)}); {force}"
        )
    if start.any():
        return "start"
    if end.any():
        return "end"
    raise DataError(
        f"{source}: ambiguous bar label: no session has a bar at the open or at the close "
        f"without the other; {force}"
    )


def symbol_from_filename(path: str | Path) -> str:
    """`AAPL_1min.csv.gz` -> AAPL: the file name up to its first `_` or `.`."""
    name = Path(path).name
    return re.split(r"[_.]", name, maxsplit=1)[0].upper()


def _norm_symbol(raw: str, where: str) -> str:
    sym = raw.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(sym):
        raise DataError(
            f"{where}: invalid symbol {raw!r}: a symbol is a ticker of 1-10 characters "
            "(A-Z first, then A-Z, 0-9, '.' or '-')"
        )
    return sym


def read_bars_file(
    path: str | Path,
    *,
    fmt: Format = "csv",
    symbol: str | None = None,
    tz: str = EXCHANGE_TZ,
    label: Label | None = None,
    time_format: str | None = None,
    calendar: TradingCalendar | None = None,
) -> list[ImportedBars]:
    """Read one file of 1-minute bars into per-symbol frames of UTC start-labelled bars.

    fmt "csv": header timestamp,open,high,low,close,volume (datetime/date/time name the
    timestamp; a symbol column may replace `symbol`, which then selects one of its symbols),
    or no header and 6 positional columns separated by `,` or `;`; default label start.
    fmt "alphavantage": the provider's intraday CSV (header required, newest first); the
    symbol defaults to the file-name prefix and the label to "auto" (detected per symbol).
    Extended-hours bars are kept. Naive times are read in `tz`; `time_format` is a strptime
    format for the timestamp column.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if label is None:
        label = "auto" if fmt == "alphavantage" else "start"
    if label not in LABELS:
        raise ConfigError(f"--label: unknown label {label!r}; choose one of {', '.join(LABELS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt_name = "Alpha Vantage" if fmt == "alphavantage" else "CSV"
    raw = _read_raw(path, require_header=fmt == "alphavantage", fmt_name=fmt_name)
    frame = raw.frame
    nums = _numbers(frame, path)
    ts = _timestamps(frame, path, tz, time_format)
    lines = frame["line"].to_numpy()

    wanted = _norm_symbol(symbol, "--symbol") if symbol else None
    if "symbol" in frame.columns:
        sym_text = frame["symbol"].astype("string").str.strip().str.upper()
        empty = sym_text.isna().to_numpy() | (sym_text == "").fillna(True).to_numpy()
        if empty.any():
            raise DataError(f"{path}: line {lines[int(np.argmax(empty))]}: the symbol is empty")
        codes, uniques = pd.factorize(sym_text)
        groups: list[tuple[str, np.ndarray]] = []
        for i, raw_sym in enumerate(uniques):
            rows = np.flatnonzero(codes == i)
            sym = _norm_symbol(str(raw_sym), f"{path}: line {lines[rows[0]]}")
            if wanted is None or sym == wanted:
                groups.append((sym, rows))
        if not groups:
            raise DataError(f"{path}: no bars for {wanted} in the symbol column")
    else:
        if wanted is None and fmt == "alphavantage":
            wanted = symbol_from_filename(path)
            if not SYMBOL_PATTERN.fullmatch(wanted):
                raise DataError(
                    f"{path}: cannot take a symbol from the file name ({wanted!r}); pass --symbol"
                )
        if wanted is None:
            raise DataError(f"{path}: no symbol: pass --symbol or add a symbol column to the file")
        groups = [(wanted, np.arange(len(frame)))]

    cal = calendar
    out: list[ImportedBars] = []
    for sym, rows in groups:
        sym_ts = ts[rows]
        _check_minute_bars(sym_ts, path)
        resolved: Literal["start", "end"]
        if label == "auto":
            cal = cal or TradingCalendar("XNYS")
            resolved = detect_label(sym_ts, cal, f"{path} ({sym})")
        else:
            resolved = label
        if resolved == "end":
            sym_ts = sym_ts - NS_PER_MINUTE
        bars = pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(sym_ts.astype("datetime64[ns]")).tz_localize("UTC"),
                **{name: nums[name][rows] for name in REQUIRED},
                "line": lines[rows],
            }
        )
        out.append(ImportedBars(sym, str(path), resolved, bars))
    return out


def read_alphavantage(
    path: str | Path,
    *,
    symbol: str | None = None,
    tz: str = EXCHANGE_TZ,
    label: Label = "auto",
    calendar: TradingCalendar | None = None,
) -> ImportedBars:
    """One Alpha Vantage TIME_SERIES_INTRADAY (1min) CSV, label detected unless forced."""
    (bars,) = read_bars_file(
        path, fmt="alphavantage", symbol=symbol, tz=tz, label=label, calendar=calendar
    )
    return bars


def import_files(
    store: BarStore,
    paths: Sequence[str | Path],
    *,
    fmt: Format = "csv",
    symbol: str | None = None,
    tz: str = EXCHANGE_TZ,
    label: Label | None = None,
    time_format: str | None = None,
    replace: bool = False,
    calendar: TradingCalendar | None = None,
) -> list[ImportResult]:
    """Read every file, then write all of them: a bad file anywhere means nothing is written."""
    if not paths:
        raise DataError("no files to import")
    cal = calendar or (
        TradingCalendar("XNYS") if fmt == "alphavantage" or label == "auto" else None
    )
    read: list[ImportedBars] = []
    for path in paths:
        read.extend(
            read_bars_file(
                path,
                fmt=fmt,
                symbol=symbol,
                tz=tz,
                label=label,
                time_format=time_format,
                calendar=cal,
            )
        )
    reports = store.write_many([(b.symbol, b.bars, b.source) for b in read], replace=replace)
    results = []
    for b, rep in zip(read, reports, strict=True):
        ts = b.bars["ts"]
        results.append(
            ImportResult(
                symbol=b.symbol,
                file=b.source,
                label=b.label,
                added=rep.added,
                unchanged=rep.unchanged,
                total=rep.total,
                first_ns=int(ts.min().value),
                last_ns=int(ts.max().value),
            )
        )
    return results

"""The Parquet bar store: one validated, start-labelled, UTC file of 1-minute bars per symbol."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from momentumbot.domain.bars import BarArrays
from momentumbot.domain.errors import DataError
from momentumbot.domain.symbols import TICKER, is_ticker
from momentumbot.domain.units import NS_PER_MINUTE

ROW_GROUP_ROWS = 16_384
PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", *PRICE_COLUMNS, "volume")
SYMBOL_PATTERN = TICKER

SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.int64(), nullable=False),
    ]
)
# Delta-packed timestamps shrink ts to almost nothing (bars are a minute apart); prices rounded
# to cents repeat a lot, so dictionaries pay; zstd reads about as fast as snappy, and smaller.
_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "use_dictionary": [*PRICE_COLUMNS, "volume"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED"},
    "write_statistics": True,
}


class SymbolInfo(NamedTuple):
    symbol: str
    first_ns: int
    last_ns: int
    rows: int


class WriteReport(NamedTuple):
    symbol: str
    added: int
    unchanged: int
    total: int


class _Columns(NamedTuple):
    """Validated bars as arrays, sorted by ts; `line` is where each row came from."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # int64
    line: np.ndarray  # int64, 1-based line of the source (or row number)


def check_symbol(symbol: str) -> str:
    """The symbol itself if it is a valid upper-case ticker, else a DataError."""
    if not is_ticker(symbol):
        raise DataError(
            f"invalid symbol {symbol!r}: a symbol is an upper-case ticker of 1-10 characters "
            "(A-Z first, then A-Z, 0-9, '.' or '-'), e.g. AAPL or BRK.B"
        )
    return symbol


def format_ns(ns: int) -> str:
    """A UTC ns timestamp as ISO 8601 UTC, for messages."""
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def _ts_ns(
    values: pd.Series | pd.Index, source: str, where: np.ndarray, has_lines: bool
) -> np.ndarray:
    """Timestamps (tz-aware datetimes or int64 UTC ns) as int64 UTC ns."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns")
        if utc.hasnans:
            bad = int(np.flatnonzero(utc.isna())[0])
            raise DataError(
                f"{_where(source, int(where[bad]), has_lines)}: the timestamp is missing"
            )
        return utc.asi8.copy()
    if pd.api.types.is_integer_dtype(dtype):
        return np.asarray(values, dtype=np.int64)
    if pd.api.types.is_datetime64_dtype(dtype):
        raise DataError(
            f"{source}: timestamps have no time zone; localise them (e.g. to America/New_York) "
            "or give int64 UTC nanoseconds"
        )
    raise DataError(
        f"{source}: column ts has type {dtype}; expected tz-aware datetimes or int64 UTC ns"
    )


def _frame_columns(bars: pd.DataFrame, source: str) -> _Columns:
    """Pull and check the columns of an incoming frame (not yet the bar rules)."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; bars need {', '.join(BAR_COLUMNS)}"
        )
    n = len(bars)
    if "line" in bars.columns:
        line = np.asarray(bars["line"], dtype=np.int64)
    elif bars.index.name == "line":
        line = np.asarray(bars.index, dtype=np.int64)
    else:
        line = np.arange(1, n + 1, dtype=np.int64)
    ts = _ts_ns(bars["ts"], source, line, "line" in bars.columns or bars.index.name == "line")
    num: dict[str, np.ndarray] = {}
    for name in (*PRICE_COLUMNS, "volume"):
        try:
            num[name] = np.asarray(bars[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{source}: column {name} is not numeric") from None
    # volume stays float64 here; validate_bars checks it is whole before casting
    return _Columns(ts, num["open"], num["high"], num["low"], num["close"], num["volume"], line)


def _where(source: str, line: int, has_lines: bool) -> str:
    return f"{source}: {'line' if has_lines else 'row'} {line}"


def validate_bars(bars: pd.DataFrame, source: str = "<memory>") -> _Columns:
    """Check every rule of a bar and return the bars as arrays sorted by ts.

    Rules: timestamps present and on whole minutes, no two bars at one timestamp; prices
    finite and positive; low <= open, close <= high; volume finite, >= 0 and whole.
    The first broken rule (in source order) raises a one-line DataError naming `source`, the
    line (from a `line` column or index, else the 1-based row) and the rule.
    """
    has_lines = "line" in bars.columns or bars.index.name == "line"
    c = _frame_columns(bars, source)
    o, h, lo, cl, v = c.open, c.high, c.low, c.close, c.volume

    with np.errstate(invalid="ignore"):
        prices = np.stack([o, h, lo, cl])
        rules: list[tuple[np.ndarray | np.bool_, str]] = [
            (~np.isfinite(prices).all(axis=0), "price is missing or not finite"),
            ((prices <= 0).any(axis=0), "price is not positive"),
            (lo > h, "low is above high"),
            (lo > o, "low is above open"),
            (lo > cl, "low is above close"),
            (o > h, "open is above high"),
            (cl > h, "close is above high"),
            (~np.isfinite(v), "volume is missing or not finite"),
            (v < 0, "volume is negative"),
            (v != np.floor(v), "volume is not a whole number"),
            (c.ts % NS_PER_MINUTE != 0, "timestamp is not on a whole minute"),
        ]
    first_bad = len(o)
    broken = ""
    for mask, rule in rules:
        hits = np.flatnonzero(mask)
        if hits.size and hits[0] < first_bad:
            first_bad, broken = int(hits[0]), rule
    if broken:
        row = first_bad
        values = (
            f"ts={format_ns(int(c.ts[row]))} open={o[row]} "
            f"high={h[row]} low={lo[row]} close={cl[row]} volume={v[row]}"
        )
        raise DataError(
            f"{_where(source, int(c.line[row]), has_lines)}: {broken} ({values}); "
            "fix the file and import again"
        )

    order = np.argsort(c.ts, kind="stable")
    ts = c.ts[order]
    if ts.size > 1:
        dup = np.flatnonzero(ts[1:] == ts[:-1])
        if dup.size:
            # report the later of the two lines in source order
            pairs = np.stack([order[dup], order[dup + 1]])
            second = pairs.max(axis=0)
            k = int(np.argmin(second))
            first_line = int(c.line[pairs[:, k].min()])
            raise DataError(
                f"{_where(source, int(c.line[second[k]]), has_lines)}: duplicate timestamp "
                f"{format_ns(int(ts[dup[k]]))} (also at {'line' if has_lines else 'row'} "
                f"{first_line}); keep one bar per minute"
            )
    return _Columns(
        ts,
        o[order],
        h[order],
        lo[order],
        cl[order],
        v[order].astype(np.int64),
        c.line[order],
    )


def _table(cols: _Columns | _Stored | BarArrays) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(cols.ts, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            pa.array(cols.open, type=pa.float64()),
            pa.array(cols.high, type=pa.float64()),
            pa.array(cols.low, type=pa.float64()),
            pa.array(cols.close, type=pa.float64()),
            pa.array(np.asarray(cols.volume, dtype=np.int64), type=pa.int64()),
        ],
        schema=SCHEMA,
    )


class _Stored(NamedTuple):
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # int64


def _merge(
    old: _Stored | None, new: _Columns, symbol: str, source: str, has_lines: bool, replace: bool
) -> tuple[_Stored, int, int]:
    """Merge validated new bars into stored ones; returns (merged, added, unchanged)."""
    new_vals = (new.open, new.high, new.low, new.close, new.volume)
    if old is None or old.ts.size == 0:
        return _Stored(new.ts, *new_vals), int(new.ts.size), 0
    pos = np.searchsorted(old.ts, new.ts)
    pos_c = np.minimum(pos, old.ts.size - 1)
    at_old = old.ts[pos_c] == new.ts
    old_vals = (old.open, old.high, old.low, old.close, old.volume)
    same = at_old.copy()
    for nv, ov in zip(new_vals, old_vals, strict=True):
        same &= nv == ov[pos_c]
    differ = at_old & ~same
    if differ.any() and not replace:
        k = int(np.flatnonzero(differ)[0])
        j = int(pos_c[k])
        raise DataError(
            f"{_where(source, int(new.line[k]), has_lines)}: bar at {format_ns(int(new.ts[k]))} "
            f"differs from the stored {symbol} bar (stored o/h/l/c/v {old.open[j]}/{old.high[j]}/"
            f"{old.low[j]}/{old.close[j]}/{old.volume[j]}, new {new.open[k]}/{new.high[k]}/"
            f"{new.low[k]}/{new.close[k]}/{new.volume[k]}); nothing written; "
            "use --replace (replace=True) to let the new bars win"
        )
    unchanged = int(same.sum())
    fresh = ~at_old
    # with replace, rows that overwrite a different stored bar count as added
    added = int(fresh.sum()) + (int(differ.sum()) if replace else 0)
    if replace and differ.any():
        keep_old = np.ones(old.ts.size, dtype=bool)
        keep_old[pos_c[differ]] = False
        take_new = fresh | differ
    else:
        keep_old = np.ones(old.ts.size, dtype=bool)
        take_new = fresh
    if not take_new.any():
        return old, added, unchanged
    ts = np.concatenate([old.ts[keep_old], new.ts[take_new]])
    order = np.argsort(ts, kind="stable")
    merged = [ts[order]]
    for nv, ov in zip(new_vals, old_vals, strict=True):
        merged.append(np.concatenate([ov[keep_old], nv[take_new]])[order])
    return _Stored(*merged), added, unchanged


class BarStore:
    """1-minute bars, one Parquet file per symbol at root/bars_1min/SYMBOL.parquet.

    Files hold timestamp[ns, UTC] bar-start labels sorted ascending, float64 prices and int64
    volumes, in row groups of about 16k rows whose ts statistics let `read_arrays` skip
    everything outside the requested window.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.bars_dir = self.root / "bars_1min"
        self._meta_cache: dict[
            str, tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, int]
        ] = {}

    # ---- paths and metadata

    def path(self, symbol: str) -> Path:
        return self.bars_dir / f"{check_symbol(symbol)}.parquet"

    def symbols(self) -> list[str]:
        if not self.bars_dir.is_dir():
            return []
        return sorted(
            p.stem for p in self.bars_dir.glob("*.parquet") if SYMBOL_PATTERN.fullmatch(p.stem)
        )

    def has(self, symbol: str) -> bool:
        return self.path(symbol).is_file()

    def _require(self, symbol: str) -> Path:
        path = self.path(symbol)
        if not path.is_file():
            raise DataError(
                f"no bars for {symbol} in the store {self.root}; import them with "
                f"`momentumbot data import FILE --symbol {symbol} --store {self.root}`"
            )
        return path

    def _row_groups(self, symbol: str) -> tuple[np.ndarray, np.ndarray, int]:
        """(min ts, max ts) per row group and the row count, cached while the file is unchanged:
        same inode, size, mtime and ctime (a file put in its place has another inode, or, if
        the number is reused, a later ctime, which unlike mtime cannot be set back)."""
        path = self._require(symbol)
        st = path.stat()
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._meta_cache.get(symbol)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2], cached[3]
        try:
            md = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path}: unreadable Parquet file ({exc}); re-import {symbol}"
            ) from None
        n = md.num_row_groups
        lo = np.empty(n, dtype=np.int64)
        hi = np.empty(n, dtype=np.int64)
        for i in range(n):
            stats = md.row_group(i).column(0).statistics
            if stats is None or not stats.has_min_max:
                raise DataError(f"{path}: row group {i} has no ts statistics; re-import {symbol}")
            lo[i] = stats.min_raw
            hi[i] = stats.max_raw
        self._meta_cache[symbol] = (key, lo, hi, md.num_rows)
        return lo, hi, int(md.num_rows)

    def info(self, symbol: str) -> SymbolInfo:
        lo, hi, rows = self._row_groups(symbol)
        if rows == 0:
            return SymbolInfo(symbol, 0, 0, 0)
        return SymbolInfo(symbol, int(lo.min()), int(hi.max()), rows)

    def check(self, symbol: str) -> SymbolInfo:
        """Re-validate a stored file (schema, order, every bar rule); DataError naming it if bad."""
        path = self._require(symbol)
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path}: unreadable Parquet file ({exc}); re-import {symbol}"
            ) from None
        if [(f.name, f.type) for f in schema] != [(f.name, f.type) for f in SCHEMA]:
            got = ", ".join(f"{f.name} {f.type}" for f in schema)
            raise DataError(f"{path}: unexpected columns ({got}); re-import {symbol}")
        frame = self.read(symbol)
        ts = frame["ts"].astype("int64").to_numpy()
        if ts.size > 1 and not (np.diff(ts) > 0).all():
            row = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 2
            raise DataError(f"{path}: row {row}: timestamps are not strictly increasing")
        validate_bars(frame, source=str(path))
        return self.info(symbol)

    # ---- reading

    def _read_table(self, symbol: str, start_ns: int | None, end_ns: int | None) -> pa.Table:
        path = self._require(symbol)
        lo, hi, _ = self._row_groups(symbol)
        sel = np.ones(lo.size, dtype=bool)
        if start_ns is not None:
            sel &= hi >= start_ns
        if end_ns is not None:
            sel &= lo < end_ns
        groups = [int(i) for i in np.flatnonzero(sel)]
        if not groups:
            return SCHEMA.empty_table()
        try:
            table = pq.ParquetFile(path).read_row_groups(groups)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path}: unreadable Parquet file ({exc}); re-import {symbol}"
            ) from None
        return table

    def read_arrays(self, symbol: str, start_ns: int, end_ns: int) -> BarArrays:
        """Bars with start_ns <= ts < end_ns as arrays; reads only the row groups it needs."""
        table = self._read_table(symbol, start_ns, end_ns)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        i = int(np.searchsorted(ts, start_ns, side="left"))
        j = int(np.searchsorted(ts, end_ns, side="left"))

        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy()[i:j]

        return BarArrays(
            ts[i:j],
            col("open"),
            col("high"),
            col("low"),
            col("close"),
            col("volume").astype(np.float64),
        )

    def row_group_spans(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """(first ts, last ts) of each row group of the symbol's file, in file order."""
        lo, hi, _ = self._row_groups(symbol)
        return lo, hi

    def read_groups(
        self, symbol: str, first: int, stop: int, columns: tuple[str, ...]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Row groups [first, stop) of the symbol's file: ts (int64 ns) and the named
        columns as float64 arrays, decoding only those columns."""
        path = self._require(symbol)
        try:
            # one thread: a row group's four columns are too small for Arrow's thread pool
            # to pay (0.6 against 1.1 ms a group), and the engine's other thread is busy;
            # a native file, not a path for Arrow to resolve (a backtest reads each file
            # several times). Keeping the parsed footers instead cost 0.1 MB a file of peak
            # memory (measured at 500 x 250), more than the parsing it saves is worth
            with pa.OSFile(str(path)) as f:
                table = pq.ParquetFile(f).read_row_groups(
                    list(range(first, stop)), columns=["ts", *columns], use_threads=False
                )
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{path}: unreadable Parquet file ({exc}); re-import {symbol}"
            ) from None
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        cols = [table.column(c).to_numpy().astype(np.float64, copy=False) for c in columns]
        return ts, cols

    def read(
        self, symbol: str, start_ns: int | None = None, end_ns: int | None = None
    ) -> pd.DataFrame:
        """Bars with start_ns <= ts < end_ns (either bound optional) as a DataFrame."""
        table = self._read_table(symbol, start_ns, end_ns)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        i = 0 if start_ns is None else int(np.searchsorted(ts, start_ns, side="left"))
        j = ts.size if end_ns is None else int(np.searchsorted(ts, end_ns, side="left"))
        data: dict[str, object] = {
            "ts": pd.DatetimeIndex(ts[i:j].astype("datetime64[ns]")).tz_localize("UTC"),
        }
        for name in PRICE_COLUMNS:
            data[name] = table.column(name).to_numpy()[i:j].astype(np.float64, copy=False)
        data["volume"] = table.column("volume").to_numpy()[i:j].astype(np.int64, copy=False)
        return pd.DataFrame(data)

    def _stored(self, symbol: str) -> _Stored | None:
        if not self.has(symbol):
            return None
        table = self._read_table(symbol, None, None)
        return _Stored(
            table.column("ts").cast(pa.int64()).to_numpy(),
            table.column("open").to_numpy(),
            table.column("high").to_numpy(),
            table.column("low").to_numpy(),
            table.column("close").to_numpy(),
            table.column("volume").to_numpy(),
        )

    # ---- writing

    def write(
        self,
        symbol: str,
        bars: pd.DataFrame,
        *,
        source: str = "<memory>",
        replace: bool = False,
    ) -> WriteReport:
        """Validate `bars` and merge them into the symbol's file, atomically.

        Rows equal to stored rows count as unchanged; a row at a stored timestamp with other
        values is refused (nothing written) unless replace=True. Any error leaves the file as it
        was. `bars` may be in any order; a `line` column (or index named `line`) gives the
        source line used in error messages.
        """
        return self.write_many([(symbol, bars, source)], replace=replace)[0]

    def write_many(
        self, items: Iterable[tuple[str, pd.DataFrame, str]], *, replace: bool = False
    ) -> list[WriteReport]:
        """Write several (symbol, bars, source) items, all or nothing for data errors.

        Every item is validated and merged in memory first (items for the same symbol merge in
        order); files are replaced only when every item has passed.
        """
        original: dict[str, _Stored | None] = {}
        pending: dict[str, _Stored | None] = {}
        reports: list[WriteReport] = []
        for symbol, bars, source in items:
            check_symbol(symbol)
            has_lines = "line" in bars.columns or bars.index.name == "line"
            new = validate_bars(bars, source)
            if symbol not in pending:
                original[symbol] = pending[symbol] = self._stored(symbol)
            merged, added, unchanged = _merge(
                pending[symbol], new, symbol, source, has_lines, replace
            )
            pending[symbol] = merged
            reports.append(WriteReport(symbol, added, unchanged, int(merged.ts.size)))
        for symbol, stored in pending.items():
            # _merge hands back the stored arrays themselves when nothing changed
            if stored is not None and stored is not original[symbol] and stored.ts.size:
                self._write_file(symbol, stored)
        return reports

    def _write_file(self, symbol: str, stored: _Stored) -> None:
        path = self.path(symbol)
        self.bars_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{symbol}.", suffix=".tmp", dir=self.bars_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(_table(stored), fh, row_group_size=ROW_GROUP_ROWS, **_WRITE_OPTIONS)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._meta_cache.pop(symbol, None)

"""Quality of stored bars per symbol: sessions and minutes against the exchange calendar,
duplicates, broken bars, zero volume and suspicious price jumps."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import SCHEMA, BarStore, format_ns
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE


@dataclass(frozen=True)
class Thresholds:
    """When a move between bars is suspicious, in percent."""

    jump_pct: float = 5.0  # consecutive regular-session bars of one session
    overnight_jump_pct: float = 20.0  # a session's first bar against the previous session's last


@dataclass(frozen=True)
class SymbolQuality:
    """What `data check` found for one symbol. Times are UTC ns (0 = none)."""

    symbol: str
    bars: int = 0
    first_ns: int = 0
    last_ns: int = 0
    sessions_expected: int = 0  # calendar sessions in the checked span
    sessions_covered: int = 0  # with at least one regular-session bar
    sessions_missing: int = 0  # without any
    missing_bars: int = 0  # regular-session minutes of the span without a bar
    covered_minutes: int = 0  # regular-session minutes of the span with a bar
    first_missing_ns: int = 0
    outside_rth: int = 0  # bars outside regular sessions (extended hours): not checked for gaps
    duplicates: int = 0  # bars at a timestamp another bar already has
    first_duplicate_ns: int = 0
    unordered: int = 0  # places where the stored timestamps step backwards
    invalid: int = 0  # bars breaking the bar rules (prices, high/low, volume, whole minutes)
    zero_volume: int = 0
    jumps: int = 0
    overnight_jumps: int = 0
    largest_jump_pct: float = 0.0
    largest_jump_ns: int = 0
    error: str = ""  # the file could not be read

    def problems(self) -> list[str]:
        """Defects of the file itself: it must be re-imported."""
        out = []
        if self.error:
            out.append("unreadable")
        if self.duplicates:
            out.append(_count(self.duplicates, "duplicate"))
        if self.unordered:
            out.append(f"{self.unordered:,} out of order")
        if self.invalid:
            out.append(_count(self.invalid, "invalid bar"))
        return out

    def findings(self) -> list[str]:
        """What the data says about the market or the provider: worth a look, not fatal."""
        out = []
        if self.sessions_missing:
            out.append(_count(self.sessions_missing, "session") + " missing")
        if self.missing_bars:
            out.append(_count(self.missing_bars, "bar") + " missing")
        if self.zero_volume:
            out.append(_count(self.zero_volume, "zero-volume bar"))
        if self.jumps or self.overnight_jumps:
            out.append(_count(self.jumps + self.overnight_jumps, "jump"))
        return out

    @property
    def status(self) -> str:
        items = self.problems() + self.findings()
        return "clean" if not items else ", ".join(items)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _rule_breaks(
    ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Bars breaking any bar rule of the store (see store.validate_bars)."""
    with np.errstate(invalid="ignore"):
        prices = np.stack([o, h, lo, c])
        bad = ~np.isfinite(prices).all(axis=0) | (prices <= 0).any(axis=0)
        bad |= (lo > h) | (lo > o) | (lo > c) | (o > h) | (c > h)
        bad |= ~np.isfinite(v) | (v < 0) | (v != np.floor(v))
        bad |= ts % NS_PER_MINUTE != 0
    return np.asarray(bad)


def _session_day(ns: int) -> dt.date:
    return pd.Timestamp(ns, tz="UTC").tz_convert(EXCHANGE_TZ).date()


def assess(
    symbol: str,
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    calendar: TradingCalendar,
    thresholds: Thresholds | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> SymbolQuality:
    """Check one symbol's bars (any order, duplicates allowed) against the calendar.

    The span is the sessions from `start` (default: the session of the first bar) to `end`
    (default: the session of the last bar). Gaps are counted on regular-session minutes;
    jumps on regular-session bars: between consecutive bars of a session (open or close
    against the previous close) and, overnight, a session's first open against the previous
    covered session's last close.
    """
    th = thresholds or Thresholds()
    ts = np.asarray(ts, dtype=np.int64)
    cols = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, volume)]
    n = int(ts.size)
    if n == 0:
        return SymbolQuality(symbol)
    unordered = int((np.diff(ts) < 0).sum()) if n > 1 else 0
    order = np.argsort(ts, kind="stable")
    ts_s = ts[order]
    o, h, lo, c, v = (a[order] for a in cols)
    dup = np.r_[False, ts_s[1:] == ts_s[:-1]]
    invalid = _rule_breaks(ts_s, o, h, lo, c, v)

    # from here on one bar per minute (the first stored); a broken bar still covers its minute
    # but takes no part in the jumps
    ts_u, o, c, broken = ts_s[~dup], o[~dup], c[~dup], invalid[~dup]
    sess = calendar.session_of(ts_u)
    rth = sess >= 0
    all_sessions = calendar.all_sessions()

    first_day = start if start is not None else _session_day(int(ts_s[0]))
    last_day = end if end is not None else _session_day(int(ts_s[-1]))
    sessions = calendar.sessions(first_day, last_day)
    grid = calendar.grid(sessions)
    present = np.isin(grid.label_ns, ts_u[rth], assume_unique=True)
    missing = ~present
    per_session = np.bincount(grid.session[present], minlength=len(sessions))
    first_missing = int(grid.label_ns[missing][0]) if missing.any() else 0
    covered = np.unique(sess[rth])
    in_span = covered[np.isin(all_sessions[covered], sessions)]

    # jumps on regular-session bars
    ok = rth & ~broken
    ts_r, o_r, c_r, s_r = ts_u[ok], o[ok], c[ok], sess[ok]
    jumps = overnight = 0
    largest, largest_ns = 0.0, 0
    if ts_r.size > 1:
        prev_c = c_r[:-1]
        move = np.maximum(np.abs(o_r[1:] / prev_c - 1.0), np.abs(c_r[1:] / prev_c - 1.0))
        same = s_r[1:] == s_r[:-1]
        gap = np.abs(o_r[1:] / prev_c - 1.0)
        intraday = same & (move * 100.0 > th.jump_pct)
        overnight_hit = ~same & (gap * 100.0 > th.overnight_jump_pct)
        jumps, overnight = int(intraday.sum()), int(overnight_hit.sum())
        scored = np.where(same, move, gap)
        k = int(np.argmax(scored))
        largest, largest_ns = float(scored[k] * 100.0), int(ts_r[k + 1])

    return SymbolQuality(
        symbol=symbol,
        bars=n,
        first_ns=int(ts_s[0]),
        last_ns=int(ts_s[-1]),
        sessions_expected=len(sessions),
        sessions_covered=int(in_span.size),
        sessions_missing=int((per_session == 0).sum()),
        missing_bars=int(missing.sum()),
        covered_minutes=int(present.sum()),
        first_missing_ns=first_missing,
        outside_rth=int((~rth).sum()),
        duplicates=int(dup.sum()),
        first_duplicate_ns=int(ts_s[dup][0]) if dup.any() else 0,
        unordered=unordered,
        invalid=int(invalid.sum()),
        zero_volume=int((v[~dup] == 0).sum()),
        jumps=jumps,
        overnight_jumps=overnight,
        largest_jump_pct=round(largest, 3),
        largest_jump_ns=largest_ns,
    )


def read_raw(path: Path) -> dict[str, np.ndarray]:
    """A bar file's columns as stored, without the store's checks (so defects can be counted)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: unreadable Parquet file ({exc})") from None
    if [(f.name, f.type) for f in table.schema] != [(f.name, f.type) for f in SCHEMA]:
        got = ", ".join(f"{f.name} {f.type}" for f in table.schema)
        raise DataError(f"{path}: unexpected columns ({got})")
    out = {"ts": table.column("ts").cast(pa.int64()).to_numpy()}
    for name in ("open", "high", "low", "close", "volume"):
        out[name] = table.column(name).to_numpy().astype(np.float64)
    return out


def check_store(
    store: BarStore,
    symbols: Sequence[str] | None = None,
    *,
    calendar: TradingCalendar | None = None,
    thresholds: Thresholds | None = None,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> list[SymbolQuality]:
    """Assess every (or the named) symbol of the store; an unreadable file is reported, not raised."""
    cal = calendar or TradingCalendar("XNYS")
    names = list(symbols) if symbols is not None else store.symbols()
    out = []
    for sym in names:
        path = store.path(sym)
        if not path.is_file():
            raise DataError(
                f"no bars for {sym} in the store {store.root}; fetch or import them first"
            )
        try:
            raw = read_raw(path)
        except DataError as exc:
            out.append(SymbolQuality(sym, error=str(exc)))
            continue
        cols = (raw["open"], raw["high"], raw["low"], raw["close"], raw["volume"])
        out.append(assess(sym, raw["ts"], *cols, cal, thresholds, start, end))
    return out


CSV_COLUMNS = [f.name for f in fields(SymbolQuality)] + ["status"]


def _csv_value(name: str, value: Any) -> Any:
    if name.endswith("_ns"):
        return format_ns(int(value)) if value else ""
    return value


def write_csv(results: Sequence[SymbolQuality], path: str | Path) -> None:
    """One row per symbol; times as ISO 8601 UTC, empty when there is none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.removesuffix("_ns") if c.endswith("_ns") else c for c in CSV_COLUMNS])
        for r in results:
            row = asdict(r)
            writer.writerow([_csv_value(k, row[k]) for k in CSV_COLUMNS[:-1]] + [r.status])

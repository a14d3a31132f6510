"""Market data the gateway replays: the bar source protocol (the Parquet store satisfies it), an
in-memory source, historical slices and bar aggregation, and 5-second bars and ticks derived
from 1-minute bars."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.source import BarReader
from momentumbot.domain.bars import BarArrays
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS, NS_PER_MINUTE
from momentumbot.gateway.protocol import BarRow, StockInfo

log = logging.getLogger("momentumbot.gateway")

NY = ZoneInfo(EXCHANGE_TZ)
FAR_FUTURE_NS = 2**62


def stable_con_id(symbol: str) -> int:
    """A contract id that depends on the symbol only (same across runs and machines)."""
    digest = hashlib.blake2b(symbol.upper().encode(), digest_size=8).digest()
    return 100_000_000 + int.from_bytes(digest, "big") % 1_900_000_000


def assign_con_ids(symbols: Sequence[str]) -> dict[str, int]:
    """Stable ids, probing upwards on the (rare) collision in sorted symbol order."""
    used: set[int] = set()
    out: dict[str, int] = {}
    for sym in sorted(symbols):
        cid = stable_con_id(sym)
        while cid in used:
            cid += 1
        used.add(cid)
        out[sym] = cid
    return out


class MarketData:
    """The bars the gateway serves, cached per symbol from `window_start_ns` on."""

    def __init__(self, source: BarReader, calendar: TradingCalendar, window_start_ns: int) -> None:
        self.source = source
        self.calendar = calendar
        self.window_start_ns = window_start_ns
        syms = [s.upper() for s in source.symbols()]
        con_ids = assign_con_ids(syms)
        self.stocks: dict[str, StockInfo] = {s: StockInfo(s, con_ids[s]) for s in syms}
        self.by_con_id: dict[int, StockInfo] = {s.con_id: s for s in self.stocks.values()}
        self._cache: dict[str, BarArrays] = {}
        self._rth_cache: dict[str, np.ndarray] = {}
        self._cursor: dict[str, int] = {}

    def bars(self, symbol: str) -> BarArrays:
        """All bars of `symbol` from the window start on (cached)."""
        got = self._cache.get(symbol)
        if got is None:
            got = self._read(symbol, self.window_start_ns, FAR_FUTURE_NS)
            self._cache[symbol] = got
        return got

    def rth_mask(self, symbol: str) -> np.ndarray:
        got = self._rth_cache.get(symbol)
        if got is None:
            b = self.bars(symbol)
            got = self.calendar.session_of(b.ts) >= 0 if len(b) else np.zeros(0, dtype=bool)
            self._rth_cache[symbol] = got
        return got

    def history(self, symbol: str, start_ns: int, end_ns: int) -> BarArrays:
        """Bars with start_ns <= ts < end_ns, from the cache when it covers the range."""
        if start_ns >= self.window_start_ns:
            return self.bars(symbol).window(start_ns, end_ns)
        return self._read(symbol, start_ns, end_ns)

    def _read(self, symbol: str, start_ns: int, end_ns: int) -> BarArrays:
        """The store's bars; a file the store cannot read is logged and served as no data
        (IB's 162 "no data"), anything else is a bug and is raised."""
        try:
            return BarArrays.of(self.source.read_arrays(symbol, start_ns, end_ns))
        except DataError as exc:
            log.error("%s: cannot read its bars (%s); serving no data", symbol, exc)
            return BarArrays.empty()

    def bar_at(self, symbol: str, label_ns: int) -> int:
        """Index of the bar labelled `label_ns` in `bars(symbol)`, or -1; fast for rising labels."""
        b = self.bars(symbol)
        n = len(b)
        i = self._cursor.get(symbol, 0)
        if i >= n or (i > 0 and b.ts[i - 1] >= label_ns) or b.ts[i] > label_ns + 30 * NS_PER_MINUTE:
            i = int(np.searchsorted(b.ts, label_ns, side="left"))
        else:
            while i < n and b.ts[i] < label_ns:
                i += 1
        self._cursor[symbol] = i
        if i < n and b.ts[i] == label_ns:
            return i
        return -1

    def last_closed_index(self, symbol: str, now_ns: int) -> int:
        """Index of the latest bar closed at `now_ns` (label + 1 min <= now), or -1."""
        b = self.bars(symbol)
        return int(np.searchsorted(b.ts, now_ns - NS_PER_MINUTE, side="right")) - 1


# ---- time formats


def ny_time(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / NS, tz=dt.UTC).astimezone(NY)


def format_bar_date(ns: int, format_date: int, daily: bool) -> str:
    """A bar's date field: formatDate 1 = "yyyymmdd hh:mm:ss America/New_York", 2 = epoch seconds;
    daily bars are "yyyymmdd" either way (as IB sends them)."""
    if daily:
        return ny_time(ns).strftime("%Y%m%d")
    if format_date == 2:
        return str(ns // NS)
    return ny_time(ns).strftime("%Y%m%d %H:%M:%S") + " America/New_York"


def format_exec_time(ns: int) -> str:
    return ny_time(ns).strftime("%Y%m%d %H:%M:%S") + " America/New_York"


_END_FORMATS = ("%Y%m%d %H:%M:%S", "%Y%m%d-%H:%M:%S", "%Y%m%d  %H:%M:%S")


def parse_end_datetime(text: str, now_ns: int) -> int:
    """endDateTime of a history request as UTC ns ("" = now).

    Accepts "yyyymmdd hh:mm:ss[ zone]", "yyyymmdd-hh:mm:ss" (UTC, IB's convention) and
    "yyyymmdd" (end of that day); a time without a zone is New York time.
    """
    s = text.strip()
    if not s:
        return now_ns
    if re.fullmatch(r"\d{8}", s):
        d = dt.datetime.strptime(s, "%Y%m%d").replace(hour=23, minute=59, second=59, tzinfo=NY)
        return int(d.timestamp()) * NS
    if re.fullmatch(r"\d{8}-\d\d:\d\d:\d\d", s):
        d = dt.datetime.strptime(s, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
        return int(d.timestamp()) * NS
    parts = s.split()
    if len(parts) >= 2:
        base = f"{parts[0]} {parts[1]}"
        zone_name = parts[2] if len(parts) >= 3 else "America/New_York"
        try:
            naive = dt.datetime.strptime(base, "%Y%m%d %H:%M:%S")  # noqa: DTZ007 - zoned below
        except ValueError:
            raise ValueError(f"endDateTime {text!r}: expected yyyymmdd hh:mm:ss [zone]") from None
        zone: dt.tzinfo
        if zone_name.upper() in ("UTC", "GMT"):
            zone = dt.UTC
        elif zone_name in ("EST", "EDT", "US/Eastern"):
            zone = NY
        else:
            try:
                zone = ZoneInfo(zone_name)
            except Exception:
                raise ValueError(f"endDateTime {text!r}: unknown time zone {zone_name!r}") from None
        return int(naive.replace(tzinfo=zone).timestamp()) * NS
    raise ValueError(f"endDateTime {text!r}: expected yyyymmdd hh:mm:ss [zone]")


# ---- bar sizes and durations

_BAR_SIZES = {
    "1 min": 1,
    "2 mins": 2,
    "3 mins": 3,
    "5 mins": 5,
    "10 mins": 10,
    "15 mins": 15,
    "20 mins": 20,
    "30 mins": 30,
    "1 hour": 60,
    "1 hours": 60,
    "2 hours": 120,
    "3 hours": 180,
    "4 hours": 240,
    "8 hours": 480,
    "1 day": 1440,
}
DAILY = 1440


def parse_bar_size(text: str) -> int:
    """Minutes per bar for an IB barSizeSetting (1 min and up, at most 1 day)."""
    minutes = _BAR_SIZES.get(" ".join(text.split()).lower())
    if minutes is None:
        raise ValueError(f"bar size {text!r} is not served: use 1 min .. 1 day")
    return minutes


def duration_start(text: str, end_ns: int, calendar: TradingCalendar, use_rth: bool) -> int:
    """Start (UTC ns) of an IB durationStr ending at `end_ns`.

    "N S" seconds; "N D" the last N sessions that opened before the end (from their open, or from
    New York midnight without useRTH); "N W" / "N M" / "N Y" calendar weeks, months, years.
    """
    parts = text.split()
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) <= 0:
        raise ValueError(f"duration {text!r}: expected 'N S|D|W|M|Y'")
    n, unit = int(parts[0]), parts[1].upper()
    end = pd.Timestamp(end_ns, tz="UTC")
    if unit == "S":
        return end_ns - n * NS
    if unit == "D":
        end_day = end.tz_convert(NY).tz_localize(None).normalize()
        sessions = calendar.sessions(end_day - pd.Timedelta(days=7 * n + 14), end_day)
        grid = calendar.grid(sessions)
        opened = grid.open_ns < end_ns
        opens = grid.open_ns[opened]
        if opens.size == 0:
            return end_ns
        first = int(opens[max(0, opens.size - n)])
        if use_rth:
            return first
        day = pd.Timestamp(first, tz="UTC").tz_convert(NY).normalize()
        return int(day.tz_convert("UTC").value)
    offsets = {
        "W": pd.DateOffset(weeks=n),
        "M": pd.DateOffset(months=n),
        "Y": pd.DateOffset(years=n),
    }
    if unit not in offsets:
        raise ValueError(f"duration {text!r}: unit must be S, D, W, M or Y")
    return int((end.tz_convert(NY) - offsets[unit]).tz_convert("UTC").value)


def bucket_bounds(
    ts: np.ndarray, minutes: int, calendar: TradingCalendar, use_rth: bool
) -> tuple[np.ndarray, np.ndarray]:
    """For each bar label: (bucket start label, bucket end) in UTC ns.

    Intraday buckets are aligned to New York clock time; with useRTH the first bucket of a
    session starts at the open (IB's 09:30 hourly bar) and the last ends at the close.
    Daily buckets are sessions (useRTH) or New York calendar days.
    """
    if ts.size == 0:
        z = np.empty(0, dtype=np.int64)
        return z, z
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(NY)
    midnight = local.normalize()
    midnight_ns = midnight.tz_convert("UTC").as_unit("ns").asi8
    if minutes >= DAILY:
        start = midnight_ns.copy()
        end = (midnight + pd.Timedelta(days=1)).tz_convert("UTC").as_unit("ns").asi8
    else:
        since = (ts - midnight_ns) // NS_PER_MINUTE
        start = midnight_ns + (since // minutes) * minutes * NS_PER_MINUTE
        end = start + minutes * NS_PER_MINUTE
    if use_rth:
        idx = calendar.session_of(ts)
        ok = idx >= 0
        if ok.any():
            uniq, inv = np.unique(idx[ok], return_inverse=True)
            g = calendar.grid(calendar.all_sessions()[uniq])
            start[ok] = np.maximum(start[ok], g.open_ns[inv])
            end[ok] = np.minimum(end[ok], g.close_ns[inv])
    return start.astype(np.int64), end.astype(np.int64)


@dataclass(frozen=True)
class AggBars:
    """Aggregated bars: start label, end (close time), OHLCV, wap, count."""

    start: np.ndarray
    end: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    wap: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def select(self, keep: np.ndarray) -> AggBars:
        return AggBars(
            self.start[keep], self.end[keep], self.open[keep], self.high[keep], self.low[keep],
            self.close[keep], self.volume[keep], self.wap[keep], self.count[keep],
        )  # fmt: skip


def trade_count(volume: np.ndarray) -> np.ndarray:
    """A plausible trade count for a bar (bars carry none): one per 100 shares, at least 1."""
    return np.where(volume > 0, np.maximum(1, np.round(volume / 100.0)), 0).astype(np.int64)


def typical_price(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    return np.round((high + low + close) / 3.0, 6)


def bar_row(
    label_ns: int, o: float, h: float, low: float, c: float, v: float, format_date: int
) -> BarRow:
    """One 1-minute bar on the wire (same wap and count rules as `aggregate`)."""
    return BarRow(
        date=format_bar_date(label_ns, format_date, False),
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
        wap=round((h + low + c) / 3.0, 6),
        count=max(1, round(v / 100.0)) if v > 0 else 0,
    )


def aggregate(bars: BarArrays, minutes: int, calendar: TradingCalendar, use_rth: bool) -> AggBars:
    """1-minute bars to `minutes`-minute bars (wap = volume-weighted typical price)."""
    start, end = bucket_bounds(bars.ts, minutes, calendar, use_rth)
    tp = typical_price(bars.high, bars.low, bars.close)
    if minutes == 1 and not use_rth:
        return AggBars(
            bars.ts, bars.ts + NS_PER_MINUTE, bars.open, bars.high, bars.low, bars.close,
            bars.volume, tp, trade_count(bars.volume),
        )  # fmt: skip
    if start.size == 0:
        z = np.empty(0, dtype=np.float64)
        zi = np.empty(0, dtype=np.int64)
        return AggBars(zi, zi, z, z, z, z, z, z, zi)
    first = np.flatnonzero(np.r_[True, start[1:] != start[:-1]])
    last = np.r_[first[1:], start.size] - 1
    vol = np.add.reduceat(bars.volume, first)
    pv = np.add.reduceat(tp * bars.volume, first)
    wap = np.where(vol > 0, np.round(pv / np.where(vol > 0, vol, 1.0), 6), tp[last])
    return AggBars(
        start=start[first],
        end=end[first],
        open=bars.open[first],
        high=np.maximum.reduceat(bars.high, first),
        low=np.minimum.reduceat(bars.low, first),
        close=bars.close[last],
        volume=vol,
        wap=wap,
        count=np.add.reduceat(trade_count(bars.volume), first),
    )


def bar_rows(agg: AggBars, format_date: int, daily: bool) -> list[BarRow]:
    return [
        BarRow(
            date=format_bar_date(int(agg.start[k]), format_date, daily),
            open=float(agg.open[k]),
            high=float(agg.high[k]),
            low=float(agg.low[k]),
            close=float(agg.close[k]),
            volume=float(agg.volume[k]),
            wap=float(agg.wap[k]),
            count=int(agg.count[k]),
        )
        for k in range(len(agg))
    ]


# ---- derived 5-second bars and ticks

FIVE_SECONDS_PER_MINUTE = 12


@dataclass(frozen=True)
class FiveSecondBar:
    time_s: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    count: int


def five_second_bars(
    label_ns: int, o: float, h: float, low: float, c: float, v: float
) -> list[FiveSecondBar]:
    """Twelve 5-second bars whose path walks open -> low -> high -> close on an up bar
    (open -> high -> low -> close on a down bar) at even speed; they reproduce the minute's
    open, high, low, close and volume exactly (volume split evenly, the remainder in the first,
    so a traded minute's first 5-second bar has trades, as its open says)."""
    anchors = [o, low, h, c] if c >= o else [o, h, low, c]
    # the path at 13 instants 0..12 (x 5 s): the three legs take 4 steps each
    points: list[float] = []
    for leg in range(3):
        a, b = anchors[leg], anchors[leg + 1]
        for k in range(4):
            points.append(a + (b - a) * k / 4)
    points.append(anchors[3])
    points = [round(p, 6) for p in points]
    points[0], points[-1] = o, c
    points[4], points[8] = anchors[1], anchors[2]
    vol = int(v)
    base, extra = divmod(vol, FIVE_SECONDS_PER_MINUTE)
    start_s = label_ns // NS
    out: list[FiveSecondBar] = []
    for k in range(FIVE_SECONDS_PER_MINUTE):
        p0, p1 = points[k], points[k + 1]
        vk = base + (extra if k == 0 else 0)
        out.append(
            FiveSecondBar(
                time_s=start_s + 5 * k,
                open=p0,
                high=max(p0, p1),
                low=min(p0, p1),
                close=p1,
                volume=vk,
                wap=round((p0 + p1) / 2, 6),
                count=max(1, round(vk / 100)) if vk > 0 else 0,
            )
        )
    return out


@dataclass
class TickState:
    """What a market-data subscription has been told, so only changes go out."""

    session_open_ns: int = -1
    day_open: float = 0.0
    day_high: float = 0.0
    day_low: float = 0.0
    day_volume: float = 0.0
    prev_close: float = 0.0


def ticks_for_bar(
    state: TickState, session_open_ns: int, prev_close: float, o: float, h: float, low: float, c: float,
    v: float, close_ns: int, min_tick: float,
) -> list[tuple[str, int, float, float]]:  # fmt: skip
    """Ticks derived from one closed minute bar: ("price", type, price, size) or ("size", type,
    size, 0) or ("string", type, epoch seconds, 0). last = close with the bar's volume as size,
    bid/ask one tick either side of the close, session open/high/low/volume, previous close."""
    out: list[tuple[str, int, float, float]] = []
    if state.session_open_ns != session_open_ns:
        state.session_open_ns = session_open_ns
        state.day_open, state.day_high, state.day_low, state.day_volume = o, h, low, 0.0
        state.prev_close = prev_close
        if prev_close > 0:
            out.append(("price", 9, prev_close, 0.0))
        out.append(("price", 14, o, 0.0))
        out.append(("price", 6, h, 0.0))
        out.append(("price", 7, low, 0.0))
    else:
        if h > state.day_high:
            state.day_high = h
            out.append(("price", 6, h, 0.0))
        if low < state.day_low:
            state.day_low = low
            out.append(("price", 7, low, 0.0))
    state.day_volume += v
    bid = round(c - min_tick, 6)
    ask = round(c + min_tick, 6)
    out.append(("price", 1, bid, 100.0))
    out.append(("price", 2, ask, 100.0))
    out.append(("price", 4, c, max(v, 0.0)))
    out.append(("size", 8, state.day_volume, 0.0))
    out.append(("string", 45, float(close_ns // NS), 0.0))
    return out

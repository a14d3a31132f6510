"""Deterministic synthetic 1-minute bars that look enough like US equities for the strategy to trade.

These are NOT market data. Each symbol's bars depend only on (seed, symbol, sessions): the
random stream is seeded from the seed and a CRC32 of the ticker (stable across machines and
runs, unlike Python's hash()), so adding or removing other symbols never changes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from momentumbot.data.calendar import MinuteGrid, TradingCalendar
from momentumbot.data.store import BarStore, check_symbol
from momentumbot.domain.errors import DataError

SYNTHETIC_NOTICE = "synthetic bars from a random generator, NOT market data"
_MINUTES_PER_YEAR = 252 * 390


class _Profile(NamedTuple):
    """What kind of stock a symbol is, drawn once per symbol."""

    price: float  # first open, USD
    annual_vol: float
    thin: bool  # few trades: quiet minutes and minutes with no bar
    shares_per_minute: float  # typical volume
    active_share: float  # share of minutes that trade at all (1 for liquid names)


def default_symbols(n: int) -> list[str]:
    """n distinct fake tickers: SYN001, SYN002, ... (wider when n > 999)."""
    if n < 1:
        raise DataError(f"--symbols: need at least 1 symbol, got {n}")
    width = max(3, len(str(n)))
    return [f"SYN{i:0{width}d}" for i in range(1, n + 1)]


def _rng(seed: int, symbol: str, stream: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(symbol.encode()), stream])
    )


def _profile(seed: int, symbol: str) -> _Profile:
    rng = _rng(seed, symbol, 0)
    price = float(np.exp(rng.uniform(np.log(5.0), np.log(500.0))))
    thin = bool(rng.random() < 0.12)
    annual_vol = float(rng.uniform(0.25, 0.50) if thin else rng.uniform(0.15, 0.50))
    if thin:
        shares = float(np.exp(rng.uniform(np.log(60.0), np.log(600.0))))
        active = float(rng.uniform(0.35, 0.85))
    else:
        shares = float(np.exp(rng.uniform(np.log(800.0), np.log(60_000.0))))
        active = 1.0
    return _Profile(price, annual_vol, thin, shares, active)


def _symbol_bars(symbol: str, grid: MinuteGrid, seed: int) -> pd.DataFrame:
    prof = _profile(seed, symbol)
    rng = _rng(seed, symbol, 1)
    n = grid.n_minutes
    n_sessions = len(grid.sessions)
    sess = grid.session
    minute = grid.minute.astype(np.float64)
    length = ((grid.close_ns - grid.open_ns) // 60_000_000_000).astype(np.float64)
    from_close = length[sess] - 1.0 - minute

    # intraday U-shapes: busy, volatile open; quieter midday; busy close (closing auction)
    vol_shape = 1.0 + 2.0 * np.exp(-minute / 18.0) + 0.6 * np.exp(-from_close / 30.0)
    vol_shape /= np.sqrt(np.mean(vol_shape**2))  # rms 1: the day's variance is daily_sigma^2
    volume_shape = 1.0 + 3.0 * np.exp(-minute / 25.0) + 2.5 * np.exp(-from_close / 15.0)
    volume_shape /= volume_shape.mean()

    # per-session regime: how volatile, how busy, trend days, overnight gaps
    day_vol = rng.lognormal(-0.09, 0.3, n_sessions)  # E[day_vol^2] = 1
    trend_day = rng.random(n_sessions) < 0.18
    sigma_min = prof.annual_vol / np.sqrt(_MINUTES_PER_YEAR)
    daily_sigma = sigma_min * np.sqrt(390.0)
    trend_size = (
        rng.uniform(1.0, 2.5, n_sessions) * daily_sigma * rng.choice([-1.0, 1.0], n_sessions)
    )
    trend_from = rng.uniform(0.0, 0.6, n_sessions) * length
    trend_len = np.maximum(rng.uniform(0.25, 1.0, n_sessions) * (length - trend_from), 30.0)
    gap = rng.normal(0.0, 0.4 * daily_sigma, n_sessions)
    big_gap = rng.random(n_sessions) < 0.04
    gap[big_gap] += rng.choice([-1.0, 1.0], int(big_gap.sum())) * rng.uniform(
        0.02, 0.07, int(big_gap.sum())
    )
    gap[0] = 0.0
    day_busy = rng.lognormal(0.0, 0.35, n_sessions) * (1.0 + 1.5 * trend_day + 20.0 * np.abs(gap))

    # minute returns: U-shaped volatility, fat tails (rare 4x shocks), drift on trend days
    shock = rng.standard_normal(n)
    shock *= np.where(rng.random(n) < 0.01, 4.0 / 1.072, 1.0 / 1.072)  # unit variance
    bar_sigma = sigma_min * vol_shape * day_vol[sess]
    in_trend = (
        trend_day[sess]
        & (minute >= trend_from[sess])
        & (minute < trend_from[sess] + trend_len[sess])
    )
    drift = np.where(in_trend, trend_size[sess] / trend_len[sess], 0.0)
    ret = bar_sigma * shock + drift
    first = np.flatnonzero(grid.minute == 0)
    jump = np.zeros(n)
    jump[first] = gap
    close_log = np.log(prof.price) + np.cumsum(ret + jump)
    open_log = close_log - ret
    wick = np.abs(rng.standard_normal((2, n))) * 0.6 * bar_sigma
    o = np.round(np.exp(open_log), 2)
    c = np.round(np.exp(close_log), 2)
    h = np.round(np.exp(np.maximum(open_log, close_log) + wick[0]), 2)
    lo = np.round(np.exp(np.minimum(open_log, close_log) - wick[1]), 2)
    o = np.maximum(o, 0.01)
    c = np.maximum(c, 0.01)
    h = np.maximum(h, np.maximum(o, c))
    lo = np.clip(lo, 0.01, np.minimum(o, c))

    # volume: lognormal noise around the U-shape, more on big moves; thin names skip minutes
    activity = volume_shape * day_busy[sess] * (1.0 + 0.4 * np.abs(shock))
    noise = rng.lognormal(-0.125, 0.5, n)
    volume = np.rint(prof.shares_per_minute * activity * noise)
    if prof.thin:
        trades = rng.random(n) < np.clip(prof.active_share * np.sqrt(volume_shape), 0.05, 1.0)
        volume = np.where(trades, np.maximum(volume, 1.0), 0.0)
        keep = volume > 0
    else:
        volume = np.maximum(volume, 1.0)
        keep = rng.random(n) >= 0.0005  # the odd minute without a trade
    ts = grid.label_ns[keep]
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC"),
            "open": o[keep],
            "high": h[keep],
            "low": lo[keep],
            "close": c[keep],
            "volume": volume[keep].astype(np.int64),
        }
    )


def generate_bars(
    symbols: Sequence[str],
    sessions: pd.DatetimeIndex,
    seed: int = 7,
    calendar: TradingCalendar | None = None,
) -> dict[str, pd.DataFrame]:
    """Synthetic regular-session 1-minute bars for each symbol over the given sessions.

    Frames are in the store's write schema: ts (datetime64[ns, UTC], bar start), open, high,
    low, close (float64, cents), volume (int64). Half days follow the calendar.
    """
    cal = calendar or TradingCalendar("XNYS")
    if len(sessions) == 0:
        raise DataError("no sessions to generate bars for")
    grid = cal.grid(sessions)
    out: dict[str, pd.DataFrame] = {}
    for symbol in symbols:
        out[check_symbol(symbol)] = _symbol_bars(symbol, grid, seed)
    return out


def synthetic_sessions(
    start: str, n_sessions: int, calendar: TradingCalendar | None = None
) -> pd.DatetimeIndex:
    """The first n_sessions exchange sessions on or after start."""
    if n_sessions < 1:
        raise DataError(f"--sessions: need at least 1 session, got {n_sessions}")
    cal = calendar or TradingCalendar("XNYS")
    try:
        first = pd.Timestamp(start)
    except ValueError:
        raise DataError(f"--start: {start!r} is not a date (use YYYY-MM-DD)") from None
    sessions = cal.sessions(first, None)[:n_sessions]
    if len(sessions) < n_sessions:
        raise DataError(
            f"the exchange calendar has only {len(sessions)} sessions from {first.date()}; "
            f"asked for {n_sessions}: choose an earlier --start"
        )
    return sessions


def write_synthetic(
    store: BarStore,
    symbols: Sequence[str],
    start: str,
    n_sessions: int,
    seed: int = 7,
    *,
    replace: bool = False,
    calendar: TradingCalendar | None = None,
) -> list[str]:
    """Generate and store synthetic bars one symbol at a time (memory stays small)."""
    cal = calendar or TradingCalendar("XNYS")
    sessions = synthetic_sessions(start, n_sessions, cal)
    for symbol in symbols:
        check_symbol(symbol)
    grid = cal.grid(sessions)
    written = []
    for symbol in symbols:
        bars = _symbol_bars(symbol, grid, seed)
        store.write(symbol, bars, source=f"synthetic generator (seed {seed})", replace=replace)
        written.append(symbol)
    return written

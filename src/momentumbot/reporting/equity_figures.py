"""Figures of the equity curve: each session's closing equity, daily and monthly returns,
the minute drawdown, the deepest drawdown and the return statistics (volatility, Sharpe,
Sortino). Definitions: :mod:`momentumbot.reporting.metrics`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentumbot.reporting.metric_columns import (
    equity_frame,
    finite,
    session_dates,
    session_last_rows,
)

SESSIONS_PER_YEAR = 252

# Returns are fractions of order 1e-3..1e-1; a deviation this small is float noise from
# identical daily returns, and dividing by it would report an absurd ratio instead of None.
_ZERO_DEVIATION = 1e-12


def session_end_equity(equity: pd.DataFrame) -> pd.Series:
    """Equity at each session's last bar close, indexed by session date.

    The session of a row is the New York date of its bar's start label (``time - 1
    minute``), so a bar closing at 16:00 New York belongs to that day. The index holds
    naive midnight Timestamps (like the calendar's session labels), named ``session``.
    """
    times, rows = equity_frame(equity)
    last = session_last_rows(times)
    dates = session_dates(times)[last]
    values = np.asarray(rows["equity"].to_numpy(dtype=float))[last]
    index = pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="session")
    return pd.Series(values, index=index, name="equity")


def daily_returns(equity: pd.DataFrame, *, start_equity: float) -> pd.Series:
    """Fractional return of each session, close over previous close.

    The first session is measured against ``start_equity``. Indexed like
    :func:`session_end_equity`.
    """
    closes = session_end_equity(equity)
    previous = np.concatenate(([float(start_equity)], closes.to_numpy()[:-1]))
    return pd.Series(closes.to_numpy() / previous - 1.0, index=closes.index, name="return")


def monthly_returns(equity: pd.DataFrame, *, start_equity: float) -> pd.Series:
    """Fractional return of each calendar month (New York), month close over previous.

    A month's close is its last session's close (see :func:`session_end_equity`); the
    first month is measured against ``start_equity``, so compounding a month's daily
    returns gives the same number. Indexed by monthly ``pd.Period``, named ``month``.
    """
    closes = session_end_equity(equity)
    months = pd.PeriodIndex(pd.DatetimeIndex(closes.index).to_period("M"), name="month")
    last = closes.groupby(months).last()
    previous = np.concatenate(([float(start_equity)], last.to_numpy()[:-1]))
    return pd.Series(last.to_numpy() / previous - 1.0, index=last.index, name="return")


def drawdown(equity: pd.DataFrame, *, start_equity: float) -> pd.Series:
    """Minute drawdown (``equity / running_peak - 1``, <= 0) at every equity row.

    The running peak starts at ``start_equity``. Indexed by bar-close time (UTC).
    """
    times, rows = equity_frame(equity)
    curve = np.concatenate(([float(start_equity)], rows["equity"].to_numpy(dtype=float)))
    peak = np.maximum.accumulate(curve)
    return pd.Series((curve / peak - 1.0)[1:], index=times, name="drawdown")


@dataclass(frozen=True)
class Drawdown:
    depth: float
    start_ns: int | None
    trough_ns: int | None
    end_ns: int | None


def max_drawdown(curve: np.ndarray, times_ns: np.ndarray) -> Drawdown:
    """Deepest drawdown of ``curve`` (start_equity first) stamped with ``times_ns``."""
    peak = np.maximum.accumulate(curve)
    depth = curve / peak - 1.0
    trough = int(np.argmin(depth))
    worst = float(depth[trough])
    if not worst < 0.0:
        return Drawdown(0.0, None, None, None)
    top = peak[trough]
    # peak is a running max, so any earlier point at or above `top` is exactly at it
    start = int(np.flatnonzero(curve[:trough] >= top)[-1])
    recovered = np.flatnonzero(curve[trough + 1 :] >= top)
    end = int(times_ns[trough + 1 + recovered[0]]) if recovered.size else None
    return Drawdown(worst, int(times_ns[start]), int(times_ns[trough]), end)


def return_statistics(daily: np.ndarray) -> dict[str, float | None]:
    """Volatility, Sharpe and Sortino of daily returns (None where undefined)."""
    out: dict[str, float | None] = {"annual_volatility": None, "sharpe": None, "sortino": None}
    if daily.size < 2:
        return out
    root = math.sqrt(SESSIONS_PER_YEAR)
    mean = float(np.mean(daily))
    std = float(np.std(daily, ddof=1))
    out["annual_volatility"] = finite(std * root)
    if std > _ZERO_DEVIATION:
        out["sharpe"] = finite(mean / std * root)
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2)))
    if downside > _ZERO_DEVIATION:
        out["sortino"] = finite(mean * SESSIONS_PER_YEAR / (downside * root))
    return out

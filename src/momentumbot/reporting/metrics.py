"""Every figure of a run, computed once from the run's tables (equity.csv, fills.csv).

The console summary, summary.json and the HTML report all read their numbers from here.
Returns and ratios are FRACTIONS (0.05 is 5 %), money is USD, times are UTC.

Inputs
------
equity
    ``time, cash, positions_value, equity`` at every bar close of the run's sessions
    (``time`` = bar close = bar start label + 1 minute, tz-aware UTC; a ``time`` column or
    a DatetimeIndex).
fills
    ``fill_id, order_id, time, symbol, side, quantity, price, commission, slippage``
    (``time`` = START label of the fill's bar; ``side`` BUY/SELL; ``quantity`` > 0 shares;
    ``price`` includes slippage; ``commission`` and ``slippage`` in USD for the fill).

Definitions (what :func:`compute_figures` returns)
--------------------------------------------------
start_equity, final_equity
    The run's starting capital (given) and the equity of the last equity row.
total_return
    ``final_equity / start_equity - 1``.
sessions
    Number of sessions in the equity table. A row belongs to the session of the New York
    date of its bar's start (``time - 1 minute``).
daily returns
    Equity at each session's close (its last bar close) over the previous session's close;
    the first session is measured against ``start_equity``. 252 sessions a year, risk-free 0.
annual_return
    Compound annual growth: ``(final_equity / start_equity) ** (252 / sessions) - 1``.
annual_volatility
    ``std(daily, ddof=1) * sqrt(252)``.
sharpe
    ``mean(daily) / std(daily, ddof=1) * sqrt(252)``.
sortino
    ``mean(daily) * 252 / (sqrt(mean(min(daily, 0) ** 2)) * sqrt(252))``: downside
    deviation with target 0 over ALL days (days above 0 count as 0).
    With fewer than 2 sessions annual_volatility, sharpe and sortino are None; a zero
    denominator (a standard or downside deviation below 1e-12) gives None, never inf.
max_drawdown
    On the MINUTE equity with ``start_equity`` prepended as the first peak (stamped at the
    first bar's start, i.e. the session open): ``min(equity / running_peak - 1)``, a
    non-positive fraction; 0.0 when equity never falls below a previous peak.
max_drawdown_start, max_drawdown_trough, max_drawdown_end
    ISO 8601 UTC times of the last time at the peak before the trough, of the trough (its
    first occurrence), and of the first time after the trough that equity is back at or
    above that peak (None if it never is). All None when there is no drawdown.
calmar
    ``annual_return / abs(max_drawdown)``; None when there is no drawdown.
round_trips
    Number of completed round trips: per symbol, in fill order, a position going from zero
    to non-zero and back to zero. A partial exit does not end a trip (100 -> 40 -> 0 is one
    trip); a position still open at the end of the run is not a round trip. A trip's pnl is
    the sum of its sell values minus its buy values minus its fills' commissions (slippage
    is already inside the fill prices).
win_rate
    Share of round trips with pnl > 0 (None with no round trips).
profit_factor
    ``sum(positive pnl) / abs(sum(negative pnl))`` over round trips; None when there is no
    losing trip (including no trips at all).
avg_holding_minutes
    Mean over round trips of (time of the fill that closed it - time of the fill that
    opened it) in minutes; both are bar start labels. None with no round trips.
traded_value
    ``sum(quantity * price)`` over all fills.
turnover
    ``traded_value / mean(equity)`` over the equity rows.
exposure
    Mean over equity rows of ``positions_value / equity``.
commissions, slippage
    Sums over all fills (USD).
overnight_carries
    Passed through from the engine (one per symbol and session whose flatten order could
    not fill before the close).

Figures that cannot be computed are None, never NaN or inf, so they serialise to JSON.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ

SESSIONS_PER_YEAR = 252

# Returns are fractions of order 1e-3..1e-1; a deviation this small is float noise from
# identical daily returns, and dividing by it would report an absurd ratio instead of None.
_ZERO_DEVIATION = 1e-12

FIGURE_NAMES: tuple[str, ...] = (
    "start_equity",
    "final_equity",
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_start",
    "max_drawdown_trough",
    "max_drawdown_end",
    "calmar",
    "round_trips",
    "win_rate",
    "profit_factor",
    "avg_holding_minutes",
    "turnover",
    "exposure",
    "commissions",
    "slippage",
    "overnight_carries",
    "sessions",
    "traded_value",
)

ROUND_TRIP_COLUMNS: tuple[str, ...] = (
    "symbol",
    "entry_time",
    "exit_time",
    "quantity_max",
    "pnl",
    "holding_minutes",
    "avg_entry_price",
    "avg_exit_price",
    "commissions",
    "fills",
)

PNL_BY_SYMBOL_COLUMNS: tuple[str, ...] = (
    "symbol",
    "realised_pnl",
    "unrealised_pnl",
    "total_pnl",
    "commissions",
    "slippage",
    "buys",
    "sells",
    "round_trips",
    "traded_value",
)

_EQUITY_COLUMNS = ("positions_value", "equity")
_FILL_COLUMNS = ("time", "symbol", "side", "quantity", "price", "commission", "slippage")
_MINUTE = pd.Timedelta(minutes=1)
_MINUTE_NS = 60_000_000_000

Figure = float | int | str | None


# ----------------------------------------------------------------------------- helpers


def _utc_times(values: Any) -> pd.DatetimeIndex:
    """Any column or index of times (tz-aware, naive UTC, or ISO strings) as a UTC index.

    A categorical column (the engine's tables hold each distinct time once) is parsed one
    category at a time and expanded by its codes: the same times, without a Python call
    per row.
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
        parsed = _utc_times(cat.categories)
        codes = np.asarray(cat.codes, dtype=np.int64)
        ns = np.asarray(parsed.asi8, dtype=np.int64)[codes]
        ns[codes < 0] = np.iinfo(np.int64).min  # NaT
        return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return index.as_unit("ns")


def _str_values(column: pd.Series, *, upper: bool = False) -> np.ndarray:
    """A column's values as Python strings (object array), upper-cased if asked; a
    categorical column converts each category once and expands it by its codes."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cat = column.array
        codes = np.asarray(cat.codes, dtype=np.int64)
        if not (codes < 0).any():
            names = cat.categories.astype(str)
            if upper:
                names = names.str.upper()
            return np.asarray(names, dtype=object)[codes]
    text = column.astype(str)
    if upper:
        text = text.str.upper()
    return np.asarray(text, dtype=object)


def _times_ns(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.asi8, dtype=np.int64)


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _equity_frame(equity: pd.DataFrame) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
    """The equity table's bar-close times (UTC) and rows, sorted by time."""
    if "time" in equity.columns:
        times = _utc_times(equity["time"])
    elif isinstance(equity.index, pd.DatetimeIndex):
        times = _utc_times(equity.index)
    else:
        raise DataError("equity table has no 'time' column or DatetimeIndex")
    missing = [c for c in _EQUITY_COLUMNS if c not in equity.columns]
    if missing:
        raise DataError(f"equity table lacks column(s) {', '.join(missing)}")
    values = np.asarray(times.asi8)
    if values.size > 1 and not bool(np.all(values[1:] > values[:-1])):
        order = np.argsort(values, kind="stable")
        return times[order], equity.iloc[order]
    return times, equity


def _session_dates(closes: pd.DatetimeIndex) -> np.ndarray:
    """New York date (datetime64[D]) of each bar, from its close time."""
    starts = (closes - _MINUTE).tz_convert(EXCHANGE_TZ).tz_localize(None)
    return np.asarray(starts.values.astype("datetime64[D]"))


def _session_last_rows(closes: pd.DatetimeIndex) -> np.ndarray:
    """Positions of the last row of each session in a time-sorted index."""
    dates = _session_dates(closes)
    if dates.size == 0:
        return np.empty(0, dtype=np.int64)
    changes = np.flatnonzero(dates[1:] != dates[:-1])
    return np.append(changes, dates.size - 1)


# ------------------------------------------------------------------- equity figures


def session_end_equity(equity: pd.DataFrame) -> pd.Series:
    """Equity at each session's last bar close, indexed by session date.

    The session of a row is the New York date of its bar's start label (``time - 1
    minute``), so a bar closing at 16:00 New York belongs to that day. The index holds
    naive midnight Timestamps (like the calendar's session labels), named ``session``.
    """
    times, rows = _equity_frame(equity)
    last = _session_last_rows(times)
    dates = _session_dates(times)[last]
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
    times, rows = _equity_frame(equity)
    curve = np.concatenate(([float(start_equity)], rows["equity"].to_numpy(dtype=float)))
    peak = np.maximum.accumulate(curve)
    return pd.Series((curve / peak - 1.0)[1:], index=times, name="drawdown")


@dataclass(frozen=True)
class _Drawdown:
    depth: float
    start_ns: int | None
    trough_ns: int | None
    end_ns: int | None


def _max_drawdown(curve: np.ndarray, times_ns: np.ndarray) -> _Drawdown:
    """Deepest drawdown of ``curve`` (start_equity first) stamped with ``times_ns``."""
    peak = np.maximum.accumulate(curve)
    depth = curve / peak - 1.0
    trough = int(np.argmin(depth))
    worst = float(depth[trough])
    if not worst < 0.0:
        return _Drawdown(0.0, None, None, None)
    top = peak[trough]
    # peak is a running max, so any earlier point at or above `top` is exactly at it
    start = int(np.flatnonzero(curve[:trough] >= top)[-1])
    recovered = np.flatnonzero(curve[trough + 1 :] >= top)
    end = int(times_ns[trough + 1 + recovered[0]]) if recovered.size else None
    return _Drawdown(worst, int(times_ns[start]), int(times_ns[trough]), end)


def _return_statistics(daily: np.ndarray) -> dict[str, float | None]:
    """Volatility, Sharpe and Sortino of daily returns (None where undefined)."""
    out: dict[str, float | None] = {"annual_volatility": None, "sharpe": None, "sortino": None}
    if daily.size < 2:
        return out
    root = math.sqrt(SESSIONS_PER_YEAR)
    mean = float(np.mean(daily))
    std = float(np.std(daily, ddof=1))
    out["annual_volatility"] = _finite(std * root)
    if std > _ZERO_DEVIATION:
        out["sharpe"] = _finite(mean / std * root)
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2)))
    if downside > _ZERO_DEVIATION:
        out["sortino"] = _finite(mean * SESSIONS_PER_YEAR / (downside * root))
    return out


# ---------------------------------------------------------------------- fill tables


@dataclass(frozen=True)
class _SortedFills:
    """Fills sorted by symbol, then time, then fill_id, as arrays."""

    symbols: np.ndarray  # the distinct symbols, sorted (object)
    code: np.ndarray  # int64 index into symbols, per fill
    time_ns: np.ndarray  # int64
    signed: np.ndarray  # int64, +quantity for BUY, -quantity for SELL
    price: np.ndarray  # float64
    commission: np.ndarray  # float64
    slippage: np.ndarray  # float64
    position: np.ndarray  # int64, the symbol's position after the fill

    @property
    def size(self) -> int:
        return int(self.code.size)


def _sorted_fills(fills: pd.DataFrame) -> _SortedFills:
    if len(fills) == 0:
        empty_i = np.empty(0, dtype=np.int64)
        empty_f = np.empty(0, dtype=float)
        return _SortedFills(
            np.empty(0, dtype=object), empty_i, empty_i, empty_i, empty_f, empty_f, empty_f, empty_i
        )
    missing = [c for c in _FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise DataError(f"fills table lacks column(s) {', '.join(missing)}")
    side = _str_values(fills["side"], upper=True)
    is_buy = side == "BUY"
    bad_side = ~(is_buy | (side == "SELL"))
    if bad_side.any():
        row = int(np.flatnonzero(bad_side)[0])
        raise DataError(f"fills row {row}: side {fills['side'].iloc[row]!r} is not BUY or SELL")
    quantity = fills["quantity"].to_numpy(dtype=np.int64)
    if (quantity <= 0).any():
        row = int(np.flatnonzero(quantity <= 0)[0])
        raise DataError(f"fills row {row}: quantity {quantity[row]} is not positive")
    code, symbols = pd.factorize(_str_values(fills["symbol"]), sort=True)
    time_ns = _times_ns(_utc_times(fills["time"]))
    if "fill_id" in fills.columns and pd.api.types.is_numeric_dtype(fills["fill_id"]):
        sequence = fills["fill_id"].to_numpy(dtype=np.int64)
    else:
        sequence = np.arange(len(fills), dtype=np.int64)
    order = np.lexsort((sequence, time_ns, code))
    code = np.asarray(code, dtype=np.int64)[order]
    signed = np.where(is_buy, quantity, -quantity)[order]
    # per-symbol running position: global cumsum minus the cumsum before each symbol's first
    first = np.ones(code.size, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    total = np.cumsum(signed)
    before = (total - signed)[first]
    position = total - before[np.cumsum(first) - 1]
    previous = position - signed
    crossing = ((previous > 0) & (position < 0)) | ((previous < 0) & (position > 0))
    if crossing.any():
        at = int(np.flatnonzero(crossing)[0])
        raise DataError(
            f"fill at {_iso(int(time_ns[order][at]))} takes {symbols[code[at]]} from "
            f"{previous[at]} to {position[at]} shares in one fill; a fill may not cross zero"
        )
    return _SortedFills(
        symbols=np.asarray(symbols, dtype=object),
        code=code,
        time_ns=time_ns[order],
        signed=signed,
        price=fills["price"].to_numpy(dtype=float)[order],
        commission=fills["commission"].to_numpy(dtype=float)[order],
        slippage=fills["slippage"].to_numpy(dtype=float)[order],
        position=position,
    )


@dataclass(frozen=True)
class _Trips:
    """Every trip (closed or still open), one entry per trip, in symbol then time order."""

    code: np.ndarray
    closed: np.ndarray  # bool
    entry_ns: np.ndarray
    exit_ns: np.ndarray  # time of the closing fill; meaningless where not closed
    quantity_max: np.ndarray
    pnl: np.ndarray  # cash flows of the trip's fills minus their commissions
    entry_price: np.ndarray
    exit_price: np.ndarray
    commissions: np.ndarray
    fills: np.ndarray


def _trips(f: _SortedFills) -> _Trips:
    start = (f.position - f.signed) == 0
    trip = np.cumsum(start) - 1
    n = int(trip[-1]) + 1 if f.size else 0
    start_at = np.flatnonzero(start)
    cash_flow = -f.signed * f.price
    pnl = np.bincount(trip, cash_flow, n) - np.bincount(trip, f.commission, n)
    if n:
        quantity_max = np.maximum.reduceat(np.abs(f.position), start_at)
    else:
        quantity_max = np.empty(0, dtype=np.int64)
    direction = np.sign(f.signed[start_at])
    entering = np.sign(f.signed) == direction[trip]
    shares = np.abs(f.signed).astype(float)
    value = shares * f.price
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_price = np.bincount(trip, np.where(entering, value, 0.0), n) / np.bincount(
            trip, np.where(entering, shares, 0.0), n
        )
        exit_price = np.bincount(trip, np.where(entering, 0.0, value), n) / np.bincount(
            trip, np.where(entering, 0.0, shares), n
        )
    close_at = np.flatnonzero(f.position == 0)
    closed = np.zeros(n, dtype=bool)
    closed[trip[close_at]] = True
    exit_ns = np.zeros(n, dtype=np.int64)
    exit_ns[trip[close_at]] = f.time_ns[close_at]
    return _Trips(
        code=f.code[start_at],
        closed=closed,
        entry_ns=f.time_ns[start_at],
        exit_ns=exit_ns,
        quantity_max=np.asarray(quantity_max, dtype=np.int64),
        pnl=pnl,
        entry_price=entry_price,
        exit_price=exit_price,
        commissions=np.bincount(trip, f.commission, n),
        fills=np.bincount(trip, minlength=n),
    )


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per completed round trip, ordered by entry time then symbol.

    A round trip is, per symbol and in fill order (time, then fill_id), a position going
    from zero to non-zero and back to zero; partial exits stay inside the trip and a
    position still open at the end is not a trip. Columns:

    - ``symbol``; ``entry_time``, ``exit_time``: the bar start labels (UTC) of the fill
      that opened and of the fill that closed it;
    - ``quantity_max``: largest absolute position held during the trip;
    - ``pnl``: sell values - buy values - commissions of its fills, USD (slippage is
      already in the prices);
    - ``holding_minutes``: exit_time - entry_time in minutes;
    - ``avg_entry_price``, ``avg_exit_price``: share-weighted prices of its buys and of
      its sells; ``commissions``: their sum; ``fills``: number of fills.
    """
    f = _sorted_fills(fills)
    t = _trips(f)
    keep = np.flatnonzero(t.closed)
    keep = keep[np.lexsort((t.code[keep], t.entry_ns[keep]))]
    return pd.DataFrame(
        {
            "symbol": pd.Series(f.symbols[t.code[keep]], dtype=object),
            "entry_time": pd.to_datetime(t.entry_ns[keep], unit="ns", utc=True),
            "exit_time": pd.to_datetime(t.exit_ns[keep], unit="ns", utc=True),
            "quantity_max": t.quantity_max[keep],
            "pnl": t.pnl[keep],
            "holding_minutes": (t.exit_ns[keep] - t.entry_ns[keep]) / _MINUTE_NS,
            "avg_entry_price": t.entry_price[keep],
            "avg_exit_price": t.exit_price[keep],
            "commissions": t.commissions[keep],
            "fills": t.fills[keep].astype(np.int64),
        },
        columns=list(ROUND_TRIP_COLUMNS),
    )


def pnl_by_symbol(
    fills: pd.DataFrame,
    final_positions: Mapping[str, int],
    last_prices: Mapping[str, float],
) -> pd.DataFrame:
    """P&L per symbol, one row per symbol that has fills or an open position, by symbol.

    - ``realised_pnl``: sum of the pnl of the symbol's completed round trips (net of
      commissions, see :func:`round_trips`);
    - ``unrealised_pnl``: the still-open trip, if any: its fills' cash flows minus their
      commissions plus ``final_position * last_price`` (its costs are booked with it);
    - ``total_pnl``: realised + unrealised = sells - buys - commissions + marked position;
    - ``commissions``, ``slippage``: USD over all its fills; ``buys``, ``sells``: number of
      buy and of sell fills; ``round_trips``: completed trips; ``traded_value``:
      sum of quantity * price.

    ``final_positions`` must agree with the net position of the fills (a run starts flat);
    a symbol with an open position needs a finite entry in ``last_prices``.
    """
    f = _sorted_fills(fills)
    t = _trips(f)
    fill_symbols = [str(s) for s in f.symbols]
    known = set(fill_symbols)
    held = sorted(s for s, q in final_positions.items() if int(q) != 0 and s not in known)
    symbols = fill_symbols + held
    n = len(symbols)
    k = len(fill_symbols)

    def per_symbol(weights: np.ndarray | None) -> np.ndarray:
        out = np.zeros(n, dtype=float)
        out[:k] = np.bincount(f.code, weights, k)
        return out

    net = per_symbol(f.signed.astype(float)).astype(np.int64)
    position = np.array([int(final_positions.get(s, 0)) for s in symbols], dtype=np.int64)
    mismatch = np.flatnonzero(net != position)
    if mismatch.size:
        i = int(mismatch[0])
        raise DataError(
            f"{symbols[i]}: fills net to {net[i]} shares but the final position is "
            f"{position[i]}; the fills do not account for the position"
        )
    mark = np.zeros(n, dtype=float)
    for held_at in np.flatnonzero(position):
        symbol, shares = symbols[held_at], int(position[held_at])
        price = last_prices.get(symbol)
        if price is None or not math.isfinite(float(price)):
            raise DataError(f"{symbol}: open position of {shares} shares but no last price")
        mark[held_at] = shares * float(price)
    cash_flow = per_symbol(-f.signed * f.price)
    commissions = per_symbol(f.commission)
    realised = np.zeros(n, dtype=float)
    realised[:k] = np.bincount(t.code[t.closed], t.pnl[t.closed], k)
    total = cash_flow - commissions + mark
    is_buy = (f.signed > 0).astype(float)
    trips_closed = np.zeros(n, dtype=np.int64)
    trips_closed[:k] = np.bincount(t.code[t.closed], minlength=k)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype=object),
            "realised_pnl": realised,
            "unrealised_pnl": total - realised,
            "total_pnl": total,
            "commissions": commissions,
            "slippage": per_symbol(f.slippage),
            "buys": per_symbol(is_buy).astype(np.int64),
            "sells": per_symbol(1.0 - is_buy).astype(np.int64),
            "round_trips": trips_closed,
            "traded_value": per_symbol(np.abs(f.signed) * f.price),
        },
        columns=list(PNL_BY_SYMBOL_COLUMNS),
    )


# -------------------------------------------------------------------------- figures


def compute_figures(
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    start_equity: float,
    overnight_carries: int = 0,
) -> dict[str, Figure]:
    """Every figure of a run, keyed by :data:`FIGURE_NAMES` in that order.

    See the module docstring for each definition. Returns are fractions; money is USD;
    drawdown times are ISO 8601 UTC strings; anything undefined is None (never NaN/inf).
    An empty equity table gives final_equity = start_equity and 0 sessions.
    """
    start = float(start_equity)
    if not (math.isfinite(start) and start > 0):
        raise ValueError(f"start_equity must be a positive number, got {start_equity!r}")
    times, rows = _equity_frame(equity)
    curve = rows["equity"].to_numpy(dtype=float)
    positions_value = rows["positions_value"].to_numpy(dtype=float)
    closes_ns = _times_ns(times)

    final = float(curve[-1]) if curve.size else start
    last_rows = _session_last_rows(times)
    sessions = int(last_rows.size)
    session_close = curve[last_rows]
    daily = session_close / np.concatenate(([start], session_close[:-1])) - 1.0

    annual_return: float | None = None
    if sessions:
        with np.errstate(invalid="ignore"):
            annual_return = _finite((final / start) ** (SESSIONS_PER_YEAR / sessions) - 1.0)

    if curve.size:
        # the starting capital is the first peak, held from the open of the first bar
        dd = _max_drawdown(
            np.concatenate(([start], curve)),
            np.concatenate(([closes_ns[0] - _MINUTE_NS], closes_ns)),
        )
    else:
        dd = _Drawdown(0.0, None, None, None)
    calmar = None
    if annual_return is not None and dd.depth < 0.0:
        calmar = _finite(annual_return / abs(dd.depth))

    trips = round_trips(fills)
    pnl = trips["pnl"].to_numpy(dtype=float)
    wins = float(pnl[pnl > 0].sum())
    losses = float(pnl[pnl < 0].sum())
    n_trips = int(pnl.size)

    if len(fills):
        values = fills["quantity"].to_numpy(dtype=float) * fills["price"].to_numpy(dtype=float)
        traded_value = float(values.sum())
        commissions = float(fills["commission"].to_numpy(dtype=float).sum())
        slippage = float(fills["slippage"].to_numpy(dtype=float).sum())
    else:
        traded_value = commissions = slippage = 0.0

    turnover = exposure = None
    if curve.size:
        mean_equity = float(curve.mean())
        if mean_equity > 0:
            turnover = _finite(traded_value / mean_equity)
        with np.errstate(invalid="ignore", divide="ignore"):
            exposure = _finite(float(np.mean(positions_value / curve)))

    figures: dict[str, Figure] = {
        "start_equity": start,
        "final_equity": final,
        "total_return": _finite(final / start - 1.0),
        "annual_return": annual_return,
        **_return_statistics(daily),
        "max_drawdown": dd.depth,
        "max_drawdown_start": _iso(dd.start_ns),
        "max_drawdown_trough": _iso(dd.trough_ns),
        "max_drawdown_end": _iso(dd.end_ns),
        "calmar": calmar,
        "round_trips": n_trips,
        "win_rate": (float(np.count_nonzero(pnl > 0)) / n_trips) if n_trips else None,
        "profit_factor": _finite(wins / abs(losses)) if losses < 0 else None,
        "avg_holding_minutes": (
            float(trips["holding_minutes"].to_numpy(dtype=float).mean()) if n_trips else None
        ),
        "turnover": turnover,
        "exposure": exposure,
        "commissions": commissions,
        "slippage": slippage,
        "overnight_carries": int(overnight_carries),
        "sessions": sessions,
        "traded_value": traded_value,
    }
    return {name: figures[name] for name in FIGURE_NAMES}


def to_jsonable(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``figures`` that ``json.dumps`` accepts and that round-trips.

    NaN and inf become None; numpy scalars become Python numbers; Timestamps, datetimes
    and dates become ISO 8601 strings (NaT -> None); nested dicts, lists and tuples are
    converted the same way (e.g. the ``benchmark`` object).
    """
    return {str(key): _jsonable(value) for key, value in figures.items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, dict):
        return to_jsonable(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        stamp = pd.Timestamp(value)
        return None if stamp is pd.NaT else stamp.isoformat()
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return pd.Timedelta(value).total_seconds()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    raise TypeError(f"cannot make {type(value).__name__} JSON-serialisable: {value!r}")

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
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.domain.units import EXCHANGE_TZ
from momentumbot.reporting.equity_figures import (
    SESSIONS_PER_YEAR,
    Drawdown,
    daily_returns,
    drawdown,
    max_drawdown,
    monthly_returns,
    return_statistics,
    session_end_equity,
)
from momentumbot.reporting.metric_columns import (
    MINUTE_NS,
    equity_frame,
    finite,
    iso,
    session_last_rows,
    times_ns,
)
from momentumbot.reporting.trade_figures import (
    PNL_BY_SYMBOL_COLUMNS,
    ROUND_TRIP_COLUMNS,
    fill_tables,
    pnl_by_symbol,
    round_trips,
)

__all__ = [
    "EXCHANGE_TZ",
    "FIGURE_NAMES",
    "PNL_BY_SYMBOL_COLUMNS",
    "ROUND_TRIP_COLUMNS",
    "SESSIONS_PER_YEAR",
    "Figure",
    "compute_figures",
    "daily_returns",
    "drawdown",
    "fill_tables",
    "monthly_returns",
    "pnl_by_symbol",
    "round_trips",
    "session_end_equity",
    "to_jsonable",
]

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

Figure = float | int | str | None


def compute_figures(
    equity: pd.DataFrame,
    fills: pd.DataFrame,
    *,
    start_equity: float,
    overnight_carries: int = 0,
    trips: pd.DataFrame | None = None,
) -> dict[str, Figure]:
    """Every figure of a run, keyed by :data:`FIGURE_NAMES` in that order.

    See the module docstring for each definition. Returns are fractions; money is USD;
    drawdown times are ISO 8601 UTC strings; anything undefined is None (never NaN/inf).
    An empty equity table gives final_equity = start_equity and 0 sessions. `trips`: the
    fills' round trips when the caller has them already (`round_trips(fills)`).
    """
    start = float(start_equity)
    if not (math.isfinite(start) and start > 0):
        raise ValueError(f"start_equity must be a positive number, got {start_equity!r}")
    times, rows = equity_frame(equity)
    curve = rows["equity"].to_numpy(dtype=float)
    positions_value = rows["positions_value"].to_numpy(dtype=float)
    closes_ns = times_ns(times)

    final = float(curve[-1]) if curve.size else start
    last_rows = session_last_rows(times)
    sessions = int(last_rows.size)
    session_close = curve[last_rows]
    daily = session_close / np.concatenate(([start], session_close[:-1])) - 1.0

    annual_return: float | None = None
    if sessions:
        with np.errstate(invalid="ignore"):
            annual_return = finite((final / start) ** (SESSIONS_PER_YEAR / sessions) - 1.0)

    if curve.size:
        # the starting capital is the first peak, held from the open of the first bar
        dd = max_drawdown(
            np.concatenate(([start], curve)),
            np.concatenate(([closes_ns[0] - MINUTE_NS], closes_ns)),
        )
    else:
        dd = Drawdown(0.0, None, None, None)
    calmar = None
    if annual_return is not None and dd.depth < 0.0:
        calmar = finite(annual_return / abs(dd.depth))

    if trips is None:
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
            turnover = finite(traded_value / mean_equity)
        with np.errstate(invalid="ignore", divide="ignore"):
            exposure = finite(float(np.mean(positions_value / curve)))

    figures: dict[str, Figure] = {
        "start_equity": start,
        "final_equity": final,
        "total_return": finite(final / start - 1.0),
        "annual_return": annual_return,
        **return_statistics(daily),
        "max_drawdown": dd.depth,
        "max_drawdown_start": iso(dd.start_ns),
        "max_drawdown_trough": iso(dd.trough_ns),
        "max_drawdown_end": iso(dd.end_ns),
        "calmar": calmar,
        "round_trips": n_trips,
        "win_rate": (float(np.count_nonzero(pnl > 0)) / n_trips) if n_trips else None,
        "profit_factor": finite(wins / abs(losses)) if losses < 0 else None,
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

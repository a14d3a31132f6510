"""The run summary on the console: the figures of a run beside its buy-and-hold benchmark."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from rich.table import Table

from momentumbot.domain.units import EXCHANGE_TZ

NOT_AVAILABLE = "n/a"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def percent(value: Any) -> str:
    """A fraction as a percentage with 2 decimals: 0.1234 -> '12.34 %'."""
    number = _number(value)
    return NOT_AVAILABLE if number is None else f"{number * 100:,.2f} %"


def ratio(value: Any) -> str:
    """A ratio with 2 decimals."""
    number = _number(value)
    return NOT_AVAILABLE if number is None else f"{number:,.2f}"


def usd(value: Any) -> str:
    """USD with thousands separators and cents: -1234.5 -> '-$1,234.50'."""
    number = _number(value)
    if number is None:
        return NOT_AVAILABLE
    sign = "-" if number < 0 and round(number, 2) != 0 else ""
    return f"{sign}${abs(number):,.2f}"


def count(value: Any) -> str:
    """A whole number with thousands separators."""
    number = _number(value)
    return NOT_AVAILABLE if number is None else f"{round(number):,d}"


def minutes(value: Any) -> str:
    """A duration in minutes, 1 decimal."""
    number = _number(value)
    return NOT_AVAILABLE if number is None else f"{number:,.1f} min"


def new_york_time(value: Any) -> str:
    """A UTC time (ISO string or Timestamp) as New York wall time, to the minute."""
    if value is None or value is pd.NaT:
        return NOT_AVAILABLE
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return NOT_AVAILABLE
    if stamp is pd.NaT:
        return NOT_AVAILABLE
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M ET")


# figure name -> (label, formatter), in metrics.FIGURE_NAMES order (a test checks it)
_ROWS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "start_equity": ("Start equity", usd),
    "final_equity": ("Final equity", usd),
    "total_return": ("Total return", percent),
    "annual_return": ("Annual return (CAGR)", percent),
    "annual_volatility": ("Annual volatility", percent),
    "sharpe": ("Sharpe ratio", ratio),
    "sortino": ("Sortino ratio", ratio),
    "max_drawdown": ("Max drawdown", percent),
    "max_drawdown_start": ("Drawdown peak", new_york_time),
    "max_drawdown_trough": ("Drawdown trough", new_york_time),
    "max_drawdown_end": ("Drawdown recovered", new_york_time),
    "calmar": ("Calmar ratio", ratio),
    "round_trips": ("Round trips", count),
    "win_rate": ("Win rate", percent),
    "profit_factor": ("Profit factor", ratio),
    "avg_holding_minutes": ("Avg holding time", minutes),
    "turnover": ("Turnover (x mean equity)", ratio),
    "exposure": ("Exposure", percent),
    "commissions": ("Commissions", usd),
    "slippage": ("Slippage", usd),
    "overnight_carries": ("Overnight carries", count),
    "sessions": ("Sessions", count),
    "traded_value": ("Traded value", usd),
}


def figure_label(name: str) -> str:
    """A figure's name as shown on screen ("sharpe" -> "Sharpe ratio")."""
    label_and_format = _ROWS.get(name)
    return name.replace("_", " ").capitalize() if label_and_format is None else label_and_format[0]


def format_figure(name: str, value: Any) -> str:
    """One figure as shown on screen (units included), 'n/a' when it is missing."""
    label_and_format = _ROWS.get(name)
    if label_and_format is None:
        return NOT_AVAILABLE if value is None else str(value)
    return label_and_format[1](value)


def summary_table(figures: Mapping[str, Any], benchmark: Mapping[str, Any] | None) -> Table:
    """The figures of a run (see metrics.compute_figures) beside the benchmark's.

    Returns, volatility, drawdown, exposure and win rate as percentages; ratios with 2
    decimals; money in USD with thousands separators; drawdown dates in New York time;
    'n/a' for a missing figure, and in the whole benchmark column when there is none.
    """
    table = Table(title="Run summary", title_justify="left")
    table.add_column("Figure", style="bold")
    table.add_column("Strategy", justify="right")
    table.add_column("Buy & hold (equal weight)", justify="right")
    bench: Mapping[str, Any] = benchmark or {}
    for name, (label, fmt) in _ROWS.items():
        table.add_row(label, fmt(figures.get(name)), fmt(bench.get(name)))
    return table

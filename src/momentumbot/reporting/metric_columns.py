"""The run's tables read as arrays for the figures: times as UTC nanoseconds (categorical
columns parsed one category at a time, or not at all when the engine made them from its
own ns), strings, the equity table sorted by time, and each row's New York session."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ

if TYPE_CHECKING:
    from momentumbot.engine.time_text import KnownTimes

_EQUITY_COLUMNS = ("positions_value", "equity")
MINUTE = pd.Timedelta(minutes=1)
MINUTE_NS = 60_000_000_000


def engine_times(categories: pd.Index) -> KnownTimes | None:
    """The UTC ns and Arrow text of a categorical's categories when the engine made them
    (`engine.time_text.known_times`), else None. The engine's module is looked up, not
    imported: a process that never loaded it (the chart worker) has no such categories."""
    module = sys.modules.get("momentumbot.engine.time_text")
    return None if module is None else module.known_times(categories)


def utc_times(values: Any) -> pd.DatetimeIndex:
    """Any column or index of times (tz-aware, naive UTC, or ISO strings) as a UTC index.

    A categorical column (the engine's tables hold each distinct time once) is parsed one
    category at a time and expanded by its codes: the same times, without a Python call
    per row.
    """
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        cat = pd.Categorical(values)
        codes = np.asarray(cat.codes, dtype=np.int64)
        ns = _category_ns(cat.categories)[codes]
        ns[codes < 0] = np.iinfo(np.int64).min  # NaT
        return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return index.as_unit("ns")


_LAST_PARSED: list[tuple[pd.Index, np.ndarray]] = []


def _category_ns(categories: pd.Index) -> np.ndarray:
    """The categories' times as UTC ns: the engine's own when it made them (no text
    parsed), else parsed once for tables that share them (the run's and the benchmark's
    equity share one time column: the same Index object; indexes are immutable)."""
    known = engine_times(categories)
    if known is not None:
        return known.ns
    if _LAST_PARSED and _LAST_PARSED[0][0] is categories:
        return _LAST_PARSED[0][1]
    parsed = np.asarray(utc_times(categories).asi8, dtype=np.int64)
    _LAST_PARSED[:] = [(categories, parsed)]
    return parsed


def str_values(column: pd.Series, *, upper: bool = False) -> np.ndarray:
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


def times_ns(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.asi8, dtype=np.int64)


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def equity_frame(equity: pd.DataFrame) -> tuple[pd.DatetimeIndex, pd.DataFrame]:
    """The equity table's bar-close times (UTC) and rows, sorted by time."""
    if "time" in equity.columns:
        times = utc_times(equity["time"])
    elif isinstance(equity.index, pd.DatetimeIndex):
        times = utc_times(equity.index)
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


def session_dates(closes: pd.DatetimeIndex) -> np.ndarray:
    """New York date (datetime64[D]) of each bar, from its close time."""
    starts = (closes - MINUTE).tz_convert(EXCHANGE_TZ).tz_localize(None)
    return np.asarray(starts.values.astype("datetime64[D]"))


def session_last_rows(closes: pd.DatetimeIndex) -> np.ndarray:
    """Positions of the last row of each session in a time-sorted index."""
    dates = session_dates(closes)
    if dates.size == 0:
        return np.empty(0, dtype=np.int64)
    changes = np.flatnonzero(dates[1:] != dates[:-1])
    return np.append(changes, dates.size - 1)

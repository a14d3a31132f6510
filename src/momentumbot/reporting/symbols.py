"""One symbol over the run's minutes: price, band level and position, for drawing.

Prices come from the bar store the run read; the band level is replayed minute by minute
with the strategy's own :func:`momentumbot.strategy.band.band_update` (same reference,
resets and parameters as the engine), and the position from the run's fills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentumbot.compiled import jit
from momentumbot.config.schema import StrategyConfig
from momentumbot.data.store import BarStore
from momentumbot.domain.errors import MomentumbotError
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.reporting.run_data import MinuteAxis
from momentumbot.strategy.band import band_update


@jit()
def band_path(
    bar_open: np.ndarray,
    bar_close: np.ndarray,
    session_first: np.ndarray,
    step: float,
    buffer: float,
    hold_overnight: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The band's reference price and level (percent) after every minute, as the engine
    keeps them: the reference is the open of the symbol's first bar of the session (of the
    run when ``hold_overnight``), the level starts at 0, and minutes without a bar leave
    the band as it was. NaN before the band's first bar."""
    n = bar_close.shape[0]
    ref_out = np.full(n, np.nan)
    level_out = np.full(n, np.nan)
    has = False
    ref = 0.0
    level = 0.0
    long = False
    for m in range(n):
        if session_first[m] and not (hold_overnight and m > 0):
            has = False
        close = bar_close[m]
        if not math.isnan(close):
            if not has:
                has = True
                ref = bar_open[m]
                level = 0.0
                long = False
            _signal, level, long = band_update(close, ref, level, long, step, buffer)
        if has:
            ref_out[m] = ref
            level_out[m] = level
    return ref_out, level_out


@dataclass(frozen=True)
class Bars:
    """A symbol's bars on the run's minute axis; NaN where it has no bar."""

    open: np.ndarray
    close: np.ndarray

    @property
    def missing_minutes(self) -> int:
        return int(np.count_nonzero(np.isnan(self.close)))


def read_bars(store: BarStore, symbol: str, axis: MinuteAxis) -> Bars:
    """The symbol's regular-session bars on ``axis`` (bars off the axis are ignored)."""
    n = axis.n_minutes
    bar_open = np.full(n, np.nan)
    bar_close = np.full(n, np.nan)
    if n == 0 or not store.has(symbol):
        return Bars(bar_open, bar_close)
    lo = int(axis.label_ns[0])
    hi = int(axis.label_ns[-1]) + NS_PER_MINUTE
    arrays = store.read_arrays(symbol, lo, hi)
    idx = axis.index_of_labels(np.asarray(arrays.ts, dtype=np.int64))
    on_axis = idx >= 0
    bar_open[idx[on_axis]] = arrays.open[on_axis]
    bar_close[idx[on_axis]] = arrays.close[on_axis]
    return Bars(bar_open, bar_close)


@dataclass(frozen=True)
class BandLine:
    """The band in price terms: the current rung and the entry/exit lines around it."""

    ref: np.ndarray  # the session's reference price (first bar's open)
    buffer: float  # percent
    level: np.ndarray  # ref * (1 + level / 100)
    upper: np.ndarray  # ref * (1 + (level + buffer) / 100): a close above enters
    lower: np.ndarray  # ref * (1 + (level - buffer) / 100): a close below exits


def band_line(bars: Bars, axis: MinuteAxis, strategy: StrategyConfig) -> BandLine:
    first = np.zeros(axis.n_minutes, dtype=np.bool_)
    first[axis.session_start] = True
    ref, level = band_path(
        bars.open,
        bars.close,
        first,
        float(strategy.step),
        float(strategy.buffer),
        bool(strategy.hold_overnight),
    )
    buffer = float(strategy.buffer)
    return BandLine(
        ref=ref,
        buffer=buffer,
        level=ref * (1.0 + level / 100.0),
        upper=ref * (1.0 + (level + buffer) / 100.0),
        lower=ref * (1.0 + (level - buffer) / 100.0),
    )


@dataclass(frozen=True)
class SymbolFills:
    """A symbol's fills placed on the axis, each classed by what it did to the position."""

    index: np.ndarray  # minute index of the fill bar
    price: np.ndarray
    signed: np.ndarray  # +shares bought, -shares sold
    after: np.ndarray  # position after the fill
    kind: np.ndarray  # "entry", "add", "trim", "exit" (object array)

    @property
    def n(self) -> int:
        return int(self.index.size)


def symbol_fills(fills: pd.DataFrame, symbol: str, axis: MinuteAxis) -> SymbolFills:
    mine = fills[fills["symbol"].astype(str) == symbol]
    # the times as UTC nanoseconds (not as an array of Timestamps: a Python object each)
    ns = np.asarray(pd.DatetimeIndex(mine["time"]).as_unit("ns").asi8, dtype=np.int64)
    if len(mine):
        order = np.lexsort((mine["fill_id"].to_numpy(), ns))
        mine = mine.iloc[order]
        ns = ns[order]
    idx = axis.index_of_labels(ns)
    side = np.where(mine["side"].astype(str).to_numpy() == "BUY", 1, -1)
    signed = side * mine["quantity"].to_numpy(dtype=np.int64)
    after = np.cumsum(signed)
    before = after - signed
    kind = np.where(
        before == 0,
        "entry",
        np.where(after == 0, "exit", np.where(np.abs(after) > np.abs(before), "add", "trim")),
    ).astype(object)
    keep = idx >= 0
    return SymbolFills(
        index=idx[keep],
        price=mine["price"].to_numpy(dtype=float)[keep],
        signed=signed[keep],
        after=after[keep],
        kind=kind[keep],
    )


def position_path(fills: SymbolFills, n_minutes: int) -> np.ndarray:
    """Shares held during each minute (a fill at a bar's open counts from that bar)."""
    delta = np.zeros(n_minutes, dtype=np.int64)
    np.add.at(delta, fills.index, fills.signed)
    return np.cumsum(delta)


def marks(close: np.ndarray) -> np.ndarray:
    """The last close at or before each minute (how the engine marks positions)."""
    filled = pd.Series(close).ffill().to_numpy(dtype=float)
    return np.asarray(filled, dtype=float)


def fill_marks(fills: SymbolFills, n_minutes: int) -> np.ndarray:
    """The last fill price at or before each minute: the mark when no bars are at hand."""
    prices = np.full(n_minutes, np.nan)
    prices[fills.index] = fills.price
    return marks(prices)


def open_store(path: Path | None) -> tuple[BarStore | None, str | None]:
    """The run's bar store, or None and the reason it cannot be used."""
    if path is None:
        return None, "the run does not name the bar store it read"
    if not path.is_dir():
        return None, f"the bar store {path} is not there any more"
    try:
        return BarStore(path), None
    except (OSError, MomentumbotError) as exc:
        return None, f"the bar store {path} cannot be opened ({exc})"

"""What the charts draw, without drawing it: the time axis's ticks, thinned lines, capital
buckets, the stacked layers, the P&L rows shown and one symbol's chart data.

Nothing here imports matplotlib, so the HTML page and the pass over the symbols can use it
in a process that draws no PNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from momentumbot.reporting.console import count, usd
from momentumbot.reporting.downsample import (
    bucket_bounds,
    bucket_means,
    minmax_indices,
    step_points,
)
from momentumbot.reporting.run_data import MinuteAxis, RunData

if TYPE_CHECKING:  # the bar store and the compiled band are not needed to draw
    from momentumbot.reporting.symbols import BandLine, SymbolFills

MAX_LINE_POINTS = 3000
MAX_AREA_POINTS = 600
MAX_PNL_ROWS = 30
TOP_ALLOCATION_SYMBOLS = 10


@dataclass(frozen=True)
class Ticks:
    positions: list[float]
    labels: list[str]
    minor: list[float]
    title: str


def time_ticks(axis: MinuteAxis, max_labels: int = 10) -> Ticks:
    """Tick positions and New York labels for an x axis of run minutes.

    One session: every hour of the day ("10:00"); up to a few weeks: session dates
    ("Jan 02"), thinned to ``max_labels``; longer: month starts ("Jan 2024").
    """
    n_sessions = axis.n_sessions
    if n_sessions == 0:
        return Ticks([], [], [], "New York time")
    dates = axis.session_dates
    years = sorted({d.year for d in dates})
    span = f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]}"
    if n_sessions == 1:
        wall = axis.wall_minutes()
        hours = np.flatnonzero(wall % 60 == 0)
        positions = [0.0, *[float(i) for i in hours if i > 15]]
        labels = [clock(int(wall[int(p)])) for p in positions]
        title = f"New York time, {dates[0]:%a %Y-%m-%d}"
        return Ticks(positions, labels, [], title)
    starts = axis.session_start.astype(float)
    note = "trading minutes only; nights, weekends and holidays are skipped"
    if n_sessions <= 70:
        every = max(1, math.ceil(n_sessions / max_labels))
        chosen = list(range(0, n_sessions, every))
        return Ticks(
            [float(starts[i]) for i in chosen],
            [f"{dates[i]:%b %d}" for i in chosen],
            [float(s) for s in starts] if n_sessions <= 30 else [],
            f"New York date, {span} ({note})",
        )
    months = [i for i in range(n_sessions) if i == 0 or dates[i].month != dates[i - 1].month]
    every = max(1, math.ceil(len(months) / max_labels))
    chosen = months[::every]
    return Ticks(
        [float(starts[i]) for i in chosen],
        [f"{dates[i]:%b %Y}" for i in chosen],
        [float(starts[i]) for i in months],
        f"New York date ({note})",
    )


def clock(wall_minute: int) -> str:
    """A wall-clock minute since 1970 as HH:MM."""
    minute_of_day = wall_minute % (24 * 60)
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def thin(values: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The positions and values of a line to draw (its lows and highs kept)."""
    idx = minmax_indices(values, max_points)
    return idx, values[idx]


@dataclass(frozen=True)
class CapitalBuckets:
    """Capital in each symbol, averaged over buckets of minutes, for the stacked chart."""

    bounds: np.ndarray  # bucket starts (minute index) and the end
    by_symbol: dict[str, np.ndarray]  # USD, one value per bucket


def capital_buckets(axis: MinuteAxis) -> np.ndarray:
    """Bucket bounds used by the allocation chart."""
    return bucket_bounds(axis.n_minutes, MAX_AREA_POINTS)


def allocation_layers(run: RunData, capital: CapitalBuckets) -> dict[str, np.ndarray]:
    """The stacked layers, bottom first: the biggest symbols, 'other symbols', then cash."""
    means = {s: float(v.mean()) for s, v in capital.by_symbol.items() if v.size and np.any(v != 0)}
    ranked = sorted(means, key=lambda s: -means[s])
    top = ranked[:TOP_ALLOCATION_SYMBOLS]
    layers: dict[str, np.ndarray] = {s: capital.by_symbol[s] for s in top}
    rest = ranked[TOP_ALLOCATION_SYMBOLS:]
    if rest:
        layers[f"{len(rest)} other symbols"] = np.sum([capital.by_symbol[s] for s in rest], axis=0)
    cash = run.equity["cash"].to_numpy(dtype=float)
    layers["Cash"] = bucket_means(cash, capital.bounds)
    return layers


def pnl_rows(pnl: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The symbols the P&L chart shows (all, or the best and worst when there are many)."""
    if len(pnl) <= MAX_PNL_ROWS:
        return pnl.sort_values("realised_pnl"), None
    ordered = pnl.sort_values("realised_pnl")
    half = MAX_PNL_ROWS // 2
    shown = pd.concat([ordered.head(half), ordered.tail(half)])
    return (
        shown,
        f"the {half} worst and {half} best of {len(pnl)} symbols; all in pnl_by_symbol.csv",
    )


@dataclass(frozen=True)
class SymbolChart:
    """What one symbol's chart draws, on the run's minute axis."""

    symbol: str
    close: np.ndarray | None  # NaN where no bar; None without the bar store
    band: BandLine | None
    fills: SymbolFills
    position: np.ndarray
    missing_minutes: int | None
    realised_pnl: float | None
    note: str | None = None


def session_ffill(values: np.ndarray, axis: MinuteAxis) -> np.ndarray:
    """Carry each value forward over minutes without one, never across a session start."""
    if values.size == 0:
        return values
    frame = pd.Series(values)
    return np.asarray(frame.groupby(axis.session).ffill().to_numpy(dtype=float), dtype=float)


FILL_KINDS = ("entry", "add", "trim", "exit")
_PLURALS = {"entry": "entries", "add": "adds", "trim": "trims", "exit": "exits"}


@dataclass(frozen=True)
class SymbolLines:
    """One symbol's chart as drawn: thinned lines, marks, axis ranges and texts (a few
    thousand points, whatever the run's length: what a chart worker is sent)."""

    price: tuple[np.ndarray, np.ndarray]
    level: tuple[np.ndarray, np.ndarray]
    exit_line: tuple[np.ndarray, np.ndarray]
    marks: dict[str, np.ndarray]  # kind -> (n, 2) minute index and price
    price_range: tuple[float, float] | None
    note: str
    shares: tuple[np.ndarray, np.ndarray]
    shares_top: float
    title: str
    subtitle: str


_NO_LINE = (np.empty(0), np.empty(0))


def _span(values: list[np.ndarray]) -> tuple[float, float] | None:
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    low = min(float(v.min()) for v in finite)
    high = max(float(v.max()) for v in finite)
    pad = max((high - low) * 0.04, abs(high) * 0.001, 0.01)
    return low - pad, high + pad


def symbol_lines(chart: SymbolChart, axis: MinuteAxis, run_name: str) -> SymbolLines:
    """What :class:`~momentumbot.reporting.symbol_chart.SymbolFigure` draws of ``chart``."""
    spans: list[np.ndarray] = []
    price = _NO_LINE
    if chart.close is not None:
        price = thin(session_ffill(chart.close, axis))
        spans.append(price[1])
    level = exit_line = _NO_LINE
    if chart.band is not None:
        keep = step_points(chart.band.level, MAX_LINE_POINTS)
        level = (keep, chart.band.level[keep])
        exit_line = thin(chart.band.lower)
        spans.append(chart.band.level)
    f = chart.fills
    marks: dict[str, np.ndarray] = {}
    counts = []
    for kind in FILL_KINDS:
        chosen = f.kind == kind
        marks[kind] = np.column_stack((f.index[chosen], f.price[chosen]))
        n = int(np.count_nonzero(chosen))
        counts.append(f"{n} {_PLURALS[kind] if n != 1 else kind}")
    spans.append(np.asarray(f.price, dtype=float))
    keep = step_points(chart.position.astype(float), MAX_LINE_POINTS)
    parts = [f"{count(f.n)} fills ({', '.join(counts)})"]
    if chart.realised_pnl is not None:
        parts.append(f"realised P&L {usd(chart.realised_pnl)}")
    if chart.missing_minutes:
        parts.append(f"no bar in {count(chart.missing_minutes)} of {count(axis.n_minutes)} minutes")
    return SymbolLines(
        price=price,
        level=level,
        exit_line=exit_line,
        marks=marks,
        price_range=_span(spans),
        note=(chart.note or "") if chart.close is None else "",
        shares=(keep, chart.position[keep].astype(float)),
        shares_top=max(1.0, float(chart.position.max(initial=0)) * 1.1),
        title=f"{chart.symbol} ({run_name}): price, band and trades",
        subtitle="; ".join(parts),
    )

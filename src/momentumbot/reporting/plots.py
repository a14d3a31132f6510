"""The report's PNG charts (matplotlib, Agg canvas, no pyplot state).

Every chart of a run puts minute i of the run at x = i, so nights, weekends and holidays
take no room, and labels the axis in New York time. Long series are thinned for drawing
only (:mod:`momentumbot.reporting.downsample`); figures come from
:mod:`momentumbot.reporting.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter
from PIL import Image

from momentumbot.reporting.console import count, percent, usd
from momentumbot.reporting.downsample import (
    bucket_bounds,
    bucket_means,
    minmax_indices,
    step_points,
)
from momentumbot.reporting.metrics import daily_returns, drawdown, monthly_returns
from momentumbot.reporting.run_data import MinuteAxis, RunData
from momentumbot.reporting.symbols import BandLine, SymbolFills

STRATEGY_COLOUR = "#1f5fa8"
BENCHMARK_COLOUR = "#8c8c8c"
GAIN_COLOUR = "#2a9d3a"
LOSS_COLOUR = "#d0342c"
BAND_COLOUR = "#e07b00"
PRICE_COLOUR = "#263238"
CASH_COLOUR = "#d9d9d9"
OTHER_COLOUR = "#6f6f6f"

WIDTH_IN = 12.0
DPI = 100
MAX_LINE_POINTS = 3000
MAX_AREA_POINTS = 600
MAX_PNL_ROWS = 30
TOP_ALLOCATION_SYMBOLS = 10
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PNG_COMPRESS_LEVEL = 3


# ----------------------------------------------------------------------------- helpers


def _figure(height_in: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.draw()
    return _write_png(canvas, path)


def _write_png(canvas: FigureCanvasAgg, path: Path) -> Path:
    """The canvas as it is now (no redraw) as an RGB PNG."""
    width, height = canvas.get_width_height(physical=True)
    return _encode_png(canvas.buffer_rgba(), (width, height), path)


def _encode_png(pixels: Any, size: tuple[int, int], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombuffer("RGBA", size, pixels, "raw", "RGBA", 0, 1)
    image.convert("RGB").save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def _usd_axis(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short_usd(v)))


def _short_usd(value: float) -> str:
    size = abs(value)
    if size == 0:
        return "$0"
    if size >= 1e6:
        text = f"${size / 1e6:,.2f}M"
    elif size >= 1e4:
        text = f"${size / 1e3:,.0f}k"
    elif size >= 100:
        text = f"${size:,.0f}"
    else:
        text = f"${size:,.2f}"
    return f"-{text}" if value < 0 else text


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
        fontsize=13, color="#555555",
    )  # fmt: skip


@dataclass(frozen=True)
class _Ticks:
    positions: list[float]
    labels: list[str]
    minor: list[float]
    title: str


def time_ticks(axis: MinuteAxis, max_labels: int = 10) -> _Ticks:
    """Tick positions and New York labels for an x axis of run minutes.

    One session: every hour of the day ("10:00"); up to a few weeks: session dates
    ("Jan 02"), thinned to ``max_labels``; longer: month starts ("Jan 2024").
    """
    n_sessions = axis.n_sessions
    if n_sessions == 0:
        return _Ticks([], [], [], "New York time")
    dates = axis.session_dates
    years = sorted({d.year for d in dates})
    span = f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]}"
    if n_sessions == 1:
        wall = axis.wall_minutes()
        hours = np.flatnonzero(wall % 60 == 0)
        positions = [0.0, *[float(i) for i in hours if i > 15]]
        labels = [_clock(int(wall[int(p)])) for p in positions]
        title = f"New York time, {dates[0]:%a %Y-%m-%d}"
        return _Ticks(positions, labels, [], title)
    starts = axis.session_start.astype(float)
    note = "trading minutes only; nights, weekends and holidays are skipped"
    if n_sessions <= 70:
        every = max(1, math.ceil(n_sessions / max_labels))
        chosen = list(range(0, n_sessions, every))
        return _Ticks(
            [float(starts[i]) for i in chosen],
            [f"{dates[i]:%b %d}" for i in chosen],
            [float(s) for s in starts] if n_sessions <= 30 else [],
            f"New York date, {span} ({note})",
        )
    months = [i for i in range(n_sessions) if i == 0 or dates[i].month != dates[i - 1].month]
    every = max(1, math.ceil(len(months) / max_labels))
    chosen = months[::every]
    return _Ticks(
        [float(starts[i]) for i in chosen],
        [f"{dates[i]:%b %Y}" for i in chosen],
        [float(starts[i]) for i in months],
        f"New York date ({note})",
    )


def _clock(wall_minute: int) -> str:
    minute_of_day = wall_minute % (24 * 60)
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def _apply_time_axis(ax: Axes, axis: MinuteAxis, *, label: bool = True) -> None:
    ticks = time_ticks(axis)
    ax.set_xticks(ticks.positions, ticks.labels)
    ax.set_xticks(ticks.minor, minor=True)
    ax.grid(True, which="major", axis="both", color="#e6e6e6", linewidth=0.8)
    ax.grid(True, which="minor", axis="x", color="#f2f2f2", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlim(-0.5, max(axis.n_minutes - 0.5, 0.5))
    if label:
        ax.set_xlabel(ticks.title)


def _thin(values: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    idx = minmax_indices(values, max_points)
    return idx, values[idx]


# ------------------------------------------------------------------------ run charts


def equity_png(run: RunData, path: Path) -> Path:
    """Equity against the equal-weight buy-and-hold benchmark, drawdowns beneath."""
    fig = _figure(7.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    equity = run.equity["equity"].to_numpy(dtype=float)
    if equity.size == 0:
        _empty_note(top, "No equity rows: the run has no minutes")
        return _save(fig, path)
    final = run.figures.get("final_equity")
    total = run.figures.get("total_return")
    x, y = _thin(equity)
    top.plot(
        x,
        y,
        color=STRATEGY_COLOUR,
        linewidth=1.4,
        label=f"Strategy: {usd(final)} ({percent(total)})",
    )
    bench = run.benchmark
    if bench is not None and len(bench) == equity.size:
        bench_equity = bench["equity"].to_numpy(dtype=float)
        bf = run.benchmark_figures or {}
        bx, by = _thin(bench_equity)
        top.plot(
            bx, by, color=BENCHMARK_COLOUR, linewidth=1.2,
            label=f"Buy & hold, equal weight: {usd(bf.get('final_equity'))} "
            f"({percent(bf.get('total_return'))})",
        )  # fmt: skip
        bench_dd = drawdown(bench, start_equity=run.start_equity).to_numpy()
        dx, dy = _thin(bench_dd)
        bottom.plot(dx, dy, color=BENCHMARK_COLOUR, linewidth=1.0, label="Buy & hold")
    top.axhline(
        run.start_equity,
        color="#444444",
        linewidth=0.8,
        linestyle="--",
        label=f"Start: {usd(run.start_equity)}",
    )
    top.set_ylabel("Equity (USD)")
    _usd_axis(top)
    fig.suptitle(
        f"{run.run_dir.name}: equity, strategy vs equal-weight buy & hold", x=0.01, ha="left"
    )
    top.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, frameon=False, fontsize=9)
    dd = drawdown(run.equity, start_equity=run.start_equity).to_numpy()
    dx, dy = _thin(dd)
    bottom.fill_between(dx, dy, 0.0, color=LOSS_COLOUR, alpha=0.35, linewidth=0, label="Strategy")
    bottom.plot(dx, dy, color=LOSS_COLOUR, linewidth=0.8)
    bottom.set_ylabel("Drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    worst = run.figures.get("max_drawdown")
    bottom.legend(
        loc="lower left", title=f"Max drawdown {percent(worst)}", fontsize=8, title_fontsize=8
    )
    _apply_time_axis(top, run.axis, label=False)
    _apply_time_axis(bottom, run.axis)
    return _save(fig, path)


@dataclass(frozen=True)
class CapitalBuckets:
    """Capital in each symbol, averaged over buckets of minutes, for the stacked chart."""

    bounds: np.ndarray  # bucket starts (minute index) and the end
    by_symbol: dict[str, np.ndarray]  # USD, one value per bucket


def allocation_png(
    run: RunData, capital: CapitalBuckets, path: Path, note: str | None = None
) -> Path:
    """Capital by symbol over time, stacked, cash on top (so the top edge is equity)."""
    fig = _figure(6.0)
    ax = fig.subplots()
    if run.axis.n_minutes == 0:
        _empty_note(ax, "No equity rows: the run has no minutes")
        return _save(fig, path)
    layers = allocation_layers(run, capital)
    x = (capital.bounds[:-1] + capital.bounds[1:] - 1) / 2.0
    colours = _symbol_colours(len(layers) - 1)
    names = list(layers)
    ax.stackplot(
        x, *[layers[n] for n in names], labels=names,
        colors=[*colours[: len(names) - 1], CASH_COLOUR], linewidth=0,
    )  # fmt: skip
    ax.set_ylabel("Capital (USD, mean over each bucket of minutes)")
    _usd_axis(ax)
    held = (
        "no positions were ever held" if len(layers) == 1 else "positions marked at the last close"
    )
    title = f"{run.run_dir.name}: capital by symbol over time ({held}), cash on top"
    ax.set_title(title, loc="left")
    if note:
        ax.text(0.01, 0.02, note, transform=ax.transAxes, fontsize=8, color="#555555")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles[::-1],
        labels[::-1],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    ax.set_ylim(bottom=0)
    _apply_time_axis(ax, run.axis)
    return _save(fig, path)


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


def _symbol_colours(n: int) -> list[str]:
    palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79",
    ]  # fmt: skip
    colours = [palette[i % len(palette)] for i in range(n)]
    if n > TOP_ALLOCATION_SYMBOLS:
        colours[-1] = OTHER_COLOUR
    return colours


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


def pnl_by_symbol_png(run: RunData, path: Path) -> Path:
    """Realised P&L (net of commissions) and commissions per symbol, worst at the bottom."""
    rows, note = pnl_rows(run.pnl)
    n = len(rows)
    fig = _figure(max(3.5, 1.6 + 0.32 * n))
    ax = fig.subplots()
    if n == 0:
        _empty_note(ax, "No trades in this run: no P&L by symbol")
        ax.set_axis_off()
        return _save(fig, path)
    y = np.arange(n, dtype=float)
    realised = rows["realised_pnl"].to_numpy(dtype=float)
    commissions = rows["commissions"].to_numpy(dtype=float)
    ax.barh(y + 0.2, realised, height=0.38, color=np.where(realised >= 0, GAIN_COLOUR, LOSS_COLOUR))
    ax.barh(y - 0.2, -commissions, height=0.38, color=BENCHMARK_COLOUR)
    for row, value in zip(y, realised, strict=True):
        ax.annotate(
            usd(value), (value, row + 0.2), xytext=(4 if value >= 0 else -4, 0),
            textcoords="offset points", ha="left" if value >= 0 else "right", va="center", fontsize=7,
        )  # fmt: skip
    ax.margins(x=0.12)
    ax.set_yticks(y, rows["symbol"].astype(str).tolist())
    ax.axvline(0.0, color="#444444", linewidth=0.8)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short_usd(v)))
    ax.set_xlabel("USD")
    title = f"{run.run_dir.name}: realised P&L and commissions by symbol"
    fig.suptitle(title if note is None else f"{title} ({note})", x=0.01, ha="left")
    ax.grid(True, axis="x", color="#e6e6e6")
    ax.set_axisbelow(True)
    ax.legend(
        handles=[
            Patch(color=GAIN_COLOUR, label="Realised P&L, net of commissions: gain"),
            Patch(color=LOSS_COLOUR, label="Realised P&L, net of commissions: loss"),
            Patch(color=BENCHMARK_COLOUR, label="Commissions paid (drawn as a cost)"),
        ],
        loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, fontsize=8, frameon=False,
    )  # fmt: skip
    ax.set_ylim(-0.7, n - 0.3)
    return _save(fig, path)


def _columns(
    ax: Axes, x: np.ndarray, heights: np.ndarray, width: float, colour: str, label: str
) -> None:
    """Bars as one collection (one artist, not one rectangle each: quick for a year)."""
    h = np.nan_to_num(np.asarray(heights, dtype=float))
    left, right = x - width / 2, x + width / 2
    boxes = np.stack(
        [np.column_stack((left, np.zeros_like(h))), np.column_stack((left, h)),
         np.column_stack((right, h)), np.column_stack((right, np.zeros_like(h)))],
        axis=1,
    )  # fmt: skip
    ax.add_collection(
        PolyCollection(list(boxes), facecolors=colour, edgecolors="none", label=label)
    )
    ax.update_datalim(np.column_stack((np.concatenate((left, right)), np.concatenate((h, h)))))
    ax.autoscale_view()


def returns_by_day_png(run: RunData, path: Path) -> Path:
    """Daily returns, strategy beside benchmark, and a month-by-month table when the run
    spans more than one month."""
    daily = daily_returns(run.equity, start_equity=run.start_equity)
    monthly = monthly_returns(run.equity, start_equity=run.start_equity)
    with_months = len(monthly) > 1
    years = sorted({int(p.year) for p in monthly.index}) if with_months else []
    height = 5.0 + (1.2 + 0.45 * len(years) if with_months else 0.0)
    fig = _figure(height)
    if with_months:
        ax, table_ax = fig.subplots(2, 1, height_ratios=(4.0, 0.9 + 0.45 * len(years)))
    else:
        ax, table_ax = fig.subplots(), None
    if daily.empty:
        _empty_note(ax, "No sessions in this run")
        return _save(fig, path)
    n = len(daily)
    x = np.arange(n, dtype=float)
    values = daily.to_numpy()
    width = 0.8 if run.benchmark is None else 0.42
    _columns(
        ax,
        x - (0 if run.benchmark is None else width / 2),
        values,
        width,
        STRATEGY_COLOUR,
        "Strategy",
    )
    if run.benchmark is not None and len(run.benchmark):
        bench = daily_returns(run.benchmark, start_equity=run.start_equity)
        bench = bench.reindex(daily.index)
        _columns(ax, x + width / 2, bench.to_numpy(), width, BENCHMARK_COLOUR, "Buy & hold")
    ax.axhline(0.0, color="#444444", linewidth=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
    ax.set_ylabel("Return of the session (close to close)")
    dates = [pd.Timestamp(d) for d in daily.index]
    every = max(1, math.ceil(n / 12))
    fmt = "%b %d" if n <= 70 else "%b %d\n%Y"
    ax.set_xticks(x[::every], [d.strftime(fmt) for d in dates[::every]])
    years_span = sorted({d.year for d in dates})
    ax.set_xlabel(
        f"Session (New York date, {years_span[0]}"
        + (f"-{years_span[-1]})" if len(years_span) > 1 else ")")
    )
    ax.set_xlim(-0.7, n - 0.3)
    ax.grid(True, axis="y", color="#e6e6e6")
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", fontsize=8)
    title = f"{run.run_dir.name}: daily returns ({n} session{'s' if n != 1 else ''})"
    ax.set_title(title, loc="left")
    if table_ax is not None:
        _monthly_table(table_ax, monthly)
    return _save(fig, path)


def _monthly_table(ax: Axes, monthly: pd.Series) -> None:
    years = sorted({int(p.year) for p in monthly.index})
    grid = np.full((len(years), 12), np.nan)
    for period, value in monthly.items():
        assert isinstance(period, pd.Period)
        grid[years.index(int(period.year)), int(period.month) - 1] = value
    limit = float(np.nanmax(np.abs(grid))) if np.any(np.isfinite(grid)) else 0.01
    limit = max(limit, 1e-4)
    ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for r in range(len(years)):
        for c in range(12):
            if math.isfinite(grid[r, c]):
                ax.text(c, r, f"{grid[r, c] * 100:+.2f} %", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(12), list(_MONTHS))
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.tick_params(length=0)
    ax.set_title(
        "Monthly returns (session closes compounded; first month against the start equity)",
        loc="left",
        fontsize=10,
    )
    for spine in ax.spines.values():
        spine.set_visible(False)


# ---------------------------------------------------------------------- symbol chart


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


_PLURALS = {"entry": "entries", "add": "adds", "trim": "trims", "exit": "exits"}
_FILL_STYLES: dict[str, tuple[str, str, float, str]] = {
    # kind -> (marker, colour, size, legend)
    "entry": ("^", GAIN_COLOUR, 70.0, "Entry (buy from flat)"),
    "add": ("^", GAIN_COLOUR, 22.0, "Add (buy)"),
    "trim": ("v", LOSS_COLOUR, 22.0, "Trim (sell)"),
    "exit": ("v", LOSS_COLOUR, 70.0, "Exit (sell to flat)"),
}


def session_ffill(values: np.ndarray, axis: MinuteAxis) -> np.ndarray:
    """Carry each value forward over minutes without one, never across a session start."""
    if values.size == 0:
        return values
    frame = pd.Series(values)
    return np.asarray(frame.groupby(axis.session).ffill().to_numpy(dtype=float), dtype=float)


class SymbolFigure:
    """One figure reused for every symbol of a run: the axes, time ticks and legend are
    built once and each symbol only swaps the data, which keeps a wide run's charts quick.
    """

    def __init__(self, axis: MinuteAxis, run_name: str) -> None:
        self.axis = axis
        self.run_name = run_name
        # PNG encoding releases the GIL: it runs on a thread while the next symbol draws
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-png")
        self._encoding: list[Future[Path]] = []
        fig = Figure(figsize=(WIDTH_IN, 6.5), dpi=DPI)
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
        fig.subplots_adjust(left=0.075, right=0.985, top=0.875, bottom=0.1, hspace=0.07)
        self.fig, self.top, self.bottom = fig, top, bottom
        (self.price,) = top.plot([], [], color=PRICE_COLOUR, linewidth=0.9)
        (self.level,) = top.plot([], [], color=BAND_COLOUR, linewidth=1.1, drawstyle="steps-post")
        (self.exit_line,) = top.plot([], [], color=BAND_COLOUR, linewidth=0.7, linestyle=":")
        self.marks = {
            kind: top.scatter(
                [],
                [],
                marker=marker,
                s=size,
                color=colour,
                edgecolors="white",
                linewidths=0.5,
                zorder=3,
            )
            for kind, (marker, colour, size, _legend) in _FILL_STYLES.items()
        }
        self.note = top.text(
            0.5, 0.5, "", transform=top.transAxes, ha="center", va="center",
            fontsize=12, color="#555555",
        )  # fmt: skip
        (self.shares,) = bottom.plot(
            [], [], color=STRATEGY_COLOUR, linewidth=0.9, drawstyle="steps-post"
        )
        self.shares_fill: Any = None
        self.title = fig.text(0.075, 0.985, "", ha="left", va="top", fontsize=12)
        self.subtitle = fig.text(0.075, 0.945, "", ha="left", va="top", fontsize=9, color="#333333")
        handles = [
            Line2D([], [], color=PRICE_COLOUR, linewidth=0.9, label="Close (minute bars)"),
            Line2D([], [], color=BAND_COLOUR, linewidth=1.1, label="Band level (current rung)"),
            Line2D(
                [],
                [],
                color=BAND_COLOUR,
                linewidth=0.7,
                linestyle=":",
                label="Exit line (rung - buffer)",
            ),
        ]
        for marker, colour, size, legend in _FILL_STYLES.values():
            handles.append(
                Line2D([], [], linestyle="none", marker=marker, color=colour,
                       markersize=math.sqrt(size), markeredgecolor="white", label=legend)
            )  # fmt: skip
        top.legend(
            handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=7,
            fontsize=8, frameon=False, borderaxespad=0.2, handlelength=1.6, columnspacing=1.0,
        )  # fmt: skip
        top.set_ylabel("Price (USD)")
        bottom.set_ylabel("Shares held")
        _apply_time_axis(top, axis, label=False)
        _apply_time_axis(bottom, axis)
        # Draw what every symbol shares (x axis, legend, frames) once and keep the pixels;
        # each symbol then redraws only its own artists on a copy (blitting).
        for artist in self._own_artists():
            artist.set_animated(True)
        canvas = fig.canvas
        assert isinstance(canvas, FigureCanvasAgg)
        self.canvas = canvas
        canvas.draw()
        self.background = canvas.copy_from_bbox(fig.bbox)

    def _own_artists(self) -> list[Any]:
        return [
            self.top.yaxis,
            self.bottom.yaxis,
            *([self.shares_fill] if self.shares_fill is not None else []),
            self.shares,
            self.price,
            self.level,
            self.exit_line,
            *self.marks.values(),
            self.note,
            self.title,
            self.subtitle,
        ]

    def draw(self, chart: SymbolChart, path: Path) -> Path:
        """Price with entries and exits marked, the band level under it, and the position."""
        lows: list[float] = []
        highs: list[float] = []

        def span(values: np.ndarray) -> None:
            finite = values[np.isfinite(values)]
            if finite.size:
                lows.append(float(finite.min()))
                highs.append(float(finite.max()))

        if chart.close is not None:
            px, py = _thin(session_ffill(chart.close, self.axis))
            self.price.set_data(px, py)
            span(py)
        else:
            self.price.set_data([], [])
        if chart.band is not None:
            keep = step_points(chart.band.level, MAX_LINE_POINTS)
            self.level.set_data(keep, chart.band.level[keep])
            lx, lower = _thin(chart.band.lower)
            self.exit_line.set_data(lx, lower)
            span(chart.band.level)
        else:
            self.level.set_data([], [])
            self.exit_line.set_data([], [])
        f = chart.fills
        counts = []
        for kind, scatter in self.marks.items():
            chosen = f.kind == kind
            scatter.set_offsets(np.column_stack((f.index[chosen], f.price[chosen])))
            n = int(np.count_nonzero(chosen))
            counts.append(f"{n} {_PLURALS[kind] if n != 1 else kind}")
        span(f.price)
        self.note.set_text((chart.note or "") if chart.close is None else "")
        if lows:
            low, high = min(lows), max(highs)
            pad = max((high - low) * 0.04, abs(high) * 0.001, 0.01)
            self.top.set_ylim(low - pad, high + pad)
        keep = step_points(chart.position.astype(float), MAX_LINE_POINTS)
        shares = chart.position[keep].astype(float)
        self.shares.set_data(keep, shares)
        if self.shares_fill is not None:
            self.shares_fill.remove()
        self.shares_fill = self.bottom.fill_between(
            keep, shares, 0, step="post", color=STRATEGY_COLOUR, alpha=0.35, linewidth=0
        )
        self.shares_fill.set_animated(True)
        self.bottom.set_ylim(0, max(1.0, float(chart.position.max(initial=0)) * 1.1))
        parts = [f"{count(f.n)} fills ({', '.join(counts)})"]
        if chart.realised_pnl is not None:
            parts.append(f"realised P&L {usd(chart.realised_pnl)}")
        if chart.missing_minutes:
            parts.append(
                f"no bar in {count(chart.missing_minutes)} of {count(self.axis.n_minutes)} minutes"
            )
        self.title.set_text(f"{chart.symbol} ({self.run_name}): price, band and trades")
        self.subtitle.set_text("; ".join(parts))
        self.canvas.restore_region(self.background)
        for artist in self._own_artists():
            self.fig.draw_artist(artist)
        size = self.canvas.get_width_height(physical=True)
        pixels = bytes(self.canvas.buffer_rgba())
        self._encoding.append(self._encoder.submit(_encode_png, pixels, size, path))
        return path

    def close(self) -> None:
        """Wait for every PNG to be written (re-raising any error) and stop the encoder."""
        try:
            for future in self._encoding:
                future.result()
        finally:
            self._encoding.clear()
            self._encoder.shutdown(wait=True)


# ----------------------------------------------------------------------- comparison


def compare_png(runs: Sequence[RunData], path: Path, names: Sequence[str]) -> Path:
    """Equity curves of several runs on one plot, as return on their start equity, with
    each run's buy-and-hold dashed in the same colour."""
    fig = _figure(6.0)
    ax = fig.subplots()
    union = np.unique(np.concatenate([r.axis.label_ns for r in runs]))
    axis = MinuteAxis.from_closes(
        pd.DatetimeIndex(union.astype("datetime64[ns]")).tz_localize("UTC")
        + pd.Timedelta(minutes=1)
    )
    palette = _symbol_colours(TOP_ALLOCATION_SYMBOLS)
    for i, (run, name) in enumerate(zip(runs, names, strict=True)):
        colour = palette[i % len(palette)]
        x_all = np.searchsorted(union, run.axis.label_ns)
        ret = run.equity["equity"].to_numpy(dtype=float) / run.start_equity - 1.0
        idx = minmax_indices(ret, MAX_LINE_POINTS)
        label = f"{name}: {percent(run.figures.get('total_return'))}"
        ax.plot(x_all[idx], ret[idx], color=colour, linewidth=1.3, label=label)
        if run.benchmark is not None and len(run.benchmark) == ret.size:
            bench = run.benchmark["equity"].to_numpy(dtype=float) / run.start_equity - 1.0
            bidx = minmax_indices(bench, MAX_LINE_POINTS)
            ax.plot(
                x_all[bidx], bench[bidx], color=colour, linewidth=0.9, linestyle="--",
                alpha=0.7, label=f"buy & hold, {name}",
            )  # fmt: skip
    ax.axhline(0.0, color="#444444", linewidth=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylabel("Return on start equity")
    fig.suptitle(
        f"Equity of {len(runs)} runs (return on each run's start equity)", x=0.01, ha="left"
    )
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, fontsize=8, frameon=False)
    _apply_time_axis(ax, axis)
    return _save(fig, path)


def capital_buckets(axis: MinuteAxis) -> np.ndarray:
    """Bucket bounds used by the allocation chart."""
    return bucket_bounds(axis.n_minutes, MAX_AREA_POINTS)

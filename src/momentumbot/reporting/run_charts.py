"""The run's PNG charts: equity and drawdown, capital by symbol, P&L by symbol, daily and
monthly returns, and several runs compared.

Every chart of a run puts minute i of the run at x = i, so nights, weekends and holidays
take no room, and labels the axis in New York time. Long series are thinned for drawing
only (:mod:`momentumbot.reporting.downsample`); figures come from
:mod:`momentumbot.reporting.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from momentumbot.reporting import plot_kit as kit
from momentumbot.reporting.chart_data import (
    MAX_LINE_POINTS,
    TOP_ALLOCATION_SYMBOLS,
    CapitalBuckets,
    allocation_layers,
    pnl_rows,
    thin,
)
from momentumbot.reporting.console import percent, usd
from momentumbot.reporting.downsample import minmax_indices
from momentumbot.reporting.metrics import daily_returns, drawdown, monthly_returns
from momentumbot.reporting.run_data import MinuteAxis, RunData

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def equity_png(run: RunData, path: Path) -> Path:
    """Equity against the equal-weight buy-and-hold benchmark, drawdowns beneath."""
    fig = kit.figure(7.0)
    top, bottom = kit.rows(fig, (3, 1.3), top=0.65, bottom=0.55, gaps=(0.1,), sharex=True)
    equity = run.equity["equity"].to_numpy(dtype=float)
    if equity.size == 0:
        kit.empty_note(top, "No equity rows: the run has no minutes")
        return kit.save(fig, path)
    final = run.figures.get("final_equity")
    total = run.figures.get("total_return")
    x, y = thin(equity)
    top.plot(
        x,
        y,
        color=kit.STRATEGY_COLOUR,
        linewidth=1.4,
        label=f"Strategy: {usd(final)} ({percent(total)})",
    )
    bench = run.benchmark
    if bench is not None and len(bench) == equity.size:
        bench_equity = bench["equity"].to_numpy(dtype=float)
        bf = run.benchmark_figures or {}
        bx, by = thin(bench_equity)
        top.plot(
            bx, by, color=kit.BENCHMARK_COLOUR, linewidth=1.2,
            label=f"Buy & hold, equal weight: {usd(bf.get('final_equity'))} "
            f"({percent(bf.get('total_return'))})",
        )  # fmt: skip
        bench_dd = drawdown(bench, start_equity=run.start_equity).to_numpy()
        dx, dy = thin(bench_dd)
        bottom.plot(dx, dy, color=kit.BENCHMARK_COLOUR, linewidth=1.0, label="Buy & hold")
    top.axhline(
        run.start_equity,
        color="#444444",
        linewidth=0.8,
        linestyle="--",
        label=f"Start: {usd(run.start_equity)}",
    )
    top.set_ylabel("Equity (USD)")
    kit.usd_axis(top)
    kit.title(fig, f"{run.run_dir.name}: equity, strategy vs equal-weight buy & hold")
    top.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, frameon=False, fontsize=9)
    dd = drawdown(run.equity, start_equity=run.start_equity).to_numpy()
    dx, dy = thin(dd)
    bottom.fill_between(
        dx, dy, 0.0, color=kit.LOSS_COLOUR, alpha=0.35, linewidth=0, label="Strategy"
    )
    bottom.plot(dx, dy, color=kit.LOSS_COLOUR, linewidth=0.8)
    bottom.set_ylabel("Drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    worst = run.figures.get("max_drawdown")
    bottom.legend(
        loc="lower left", title=f"Max drawdown {percent(worst)}", fontsize=8, title_fontsize=8
    )
    kit.apply_time_axis(top, run.axis, label=False)
    kit.apply_time_axis(bottom, run.axis)
    return kit.save(fig, path)


def allocation_png(
    run: RunData, capital: CapitalBuckets, path: Path, note: str | None = None
) -> Path:
    """Capital by symbol over time, stacked, cash on top (so the top edge is equity)."""
    fig = kit.figure(6.0)
    if run.axis.n_minutes == 0:
        (ax,) = kit.rows(fig, (1,))
        kit.empty_note(ax, "No equity rows: the run has no minutes")
        return kit.save(fig, path)
    layers = allocation_layers(run, capital)
    names = list(layers)
    legend_in = 0.55 + max(kit.text_width_in(n, 8) for n in names)
    (ax,) = kit.rows(fig, (1,), right=legend_in + 0.1, top=0.35, bottom=0.55)
    x = (capital.bounds[:-1] + capital.bounds[1:] - 1) / 2.0
    colours = kit.symbol_colours(len(layers) - 1)
    ax.stackplot(
        x, *[layers[n] for n in names], labels=names,
        colors=[*colours[: len(names) - 1], kit.CASH_COLOUR], linewidth=0,
    )  # fmt: skip
    ax.set_ylabel("Capital (USD, mean over each bucket of minutes)")
    kit.usd_axis(ax)
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
    kit.apply_time_axis(ax, run.axis)
    return kit.save(fig, path)


def pnl_by_symbol_png(run: RunData, path: Path) -> Path:
    """Realised P&L (net of commissions) and commissions per symbol, worst at the bottom."""
    shown, note = pnl_rows(run.pnl)
    n = len(shown)
    fig = kit.figure(max(3.5, 1.6 + 0.32 * n))
    names = shown["symbol"].astype(str).tolist()
    left = 0.35 + max((kit.text_width_in(s, 10) for s in names), default=0.5)
    (ax,) = kit.rows(fig, (1,), left=left, top=0.65, bottom=0.5)
    title = f"{run.run_dir.name}: realised P&L and commissions by symbol"
    if n == 0:
        kit.empty_note(ax, "No trades in this run: no P&L by symbol")
        ax.set_axis_off()
        kit.title(fig, title)
        return kit.save(fig, path)
    y = np.arange(n, dtype=float)
    realised = shown["realised_pnl"].to_numpy(dtype=float)
    commissions = shown["commissions"].to_numpy(dtype=float)
    ax.barh(
        y + 0.2, realised, height=0.38,
        color=np.where(realised >= 0, kit.GAIN_COLOUR, kit.LOSS_COLOUR),
    )  # fmt: skip
    ax.barh(y - 0.2, -commissions, height=0.38, color=kit.BENCHMARK_COLOUR)
    for row, value in zip(y, realised, strict=True):
        ax.annotate(
            usd(value), (value, row + 0.2), xytext=(4 if value >= 0 else -4, 0),
            textcoords="offset points", ha="left" if value >= 0 else "right", va="center", fontsize=7,
        )  # fmt: skip
    ax.margins(x=0.12)
    ax.set_yticks(y, names)
    ax.axvline(0.0, color="#444444", linewidth=0.8)
    kit.usd_axis(ax, "x")
    ax.set_xlabel("USD")
    kit.title(fig, title if note is None else f"{title} ({note})")
    ax.grid(True, axis="x", color=kit.MAJOR_GRID)
    ax.set_axisbelow(True)
    ax.legend(
        handles=[
            Patch(color=kit.GAIN_COLOUR, label="Realised P&L, net of commissions: gain"),
            Patch(color=kit.LOSS_COLOUR, label="Realised P&L, net of commissions: loss"),
            Patch(color=kit.BENCHMARK_COLOUR, label="Commissions paid (drawn as a cost)"),
        ],
        loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, fontsize=8, frameon=False,
    )  # fmt: skip
    ax.set_ylim(-0.7, n - 0.3)
    return kit.save(fig, path)


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
    n = len(daily)
    # dates on two lines past 70 sessions
    under = 0.6 + (kit.LINE_IN if n > 70 else 0.0)
    height = 5.0 + (1.2 + 0.45 * len(years) if with_months else 0.0)
    fig = kit.figure(height)
    if with_months:
        table_in = 0.45 * len(years)
        ax, table_ax = kit.rows(
            fig, (height - 0.35 - under - 0.35 - 0.3 - table_in, table_in),
            top=0.35, bottom=0.3, gaps=(under + 0.35,),
        )  # fmt: skip
    else:
        (ax,), table_ax = kit.rows(fig, (1,), top=0.35, bottom=under), None
    if daily.empty:
        kit.empty_note(ax, "No sessions in this run")
        return kit.save(fig, path)
    x = np.arange(n, dtype=float)
    values = daily.to_numpy()
    width = 0.8 if run.benchmark is None else 0.42
    _columns(
        ax,
        x - (0 if run.benchmark is None else width / 2),
        values,
        width,
        kit.STRATEGY_COLOUR,
        "Strategy",
    )
    if run.benchmark is not None and len(run.benchmark):
        bench = daily_returns(run.benchmark, start_equity=run.start_equity)
        bench = bench.reindex(daily.index)
        _columns(ax, x + width / 2, bench.to_numpy(), width, kit.BENCHMARK_COLOUR, "Buy & hold")
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
    ax.grid(True, axis="y", color=kit.MAJOR_GRID)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", fontsize=8)
    title = f"{run.run_dir.name}: daily returns ({n} session{'s' if n != 1 else ''})"
    ax.set_title(title, loc="left")
    if table_ax is not None:
        _monthly_table(table_ax, monthly)
    return kit.save(fig, path)


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


def compare_png(runs: Sequence[RunData], path: Path, names: Sequence[str]) -> Path:
    """Equity curves of several runs on one plot, as return on their start equity, with
    each run's buy-and-hold dashed in the same colour."""
    fig = kit.figure(6.0)
    entries = sum(1 + (r.benchmark is not None) for r in runs)
    legend_in = kit.legend_rows(entries, 4) * 0.18
    (ax,) = kit.rows(fig, (1,), top=0.45 + legend_in, bottom=0.55)
    union = np.unique(np.concatenate([r.axis.label_ns for r in runs]))
    axis = MinuteAxis.from_closes(
        pd.DatetimeIndex(union.astype("datetime64[ns]")).tz_localize("UTC")
        + pd.Timedelta(minutes=1)
    )
    palette = kit.symbol_colours(TOP_ALLOCATION_SYMBOLS)
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
    kit.title(fig, f"Equity of {len(runs)} runs (return on each run's start equity)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=4, fontsize=8, frameon=False)
    kit.apply_time_axis(ax, axis)
    return kit.save(fig, path)

"""`write_report`: every plot and report.html of a run folder, in one pass over its symbols."""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from momentumbot.data.store import BarStore
from momentumbot.domain.errors import MomentumbotError
from momentumbot.reporting.chart_data import (
    CapitalBuckets,
    SymbolChart,
    capital_buckets,
    symbol_lines,
)
from momentumbot.reporting.chart_worker import GENERAL_FILES, ChartWorker
from momentumbot.reporting.console import count, usd
from momentumbot.reporting.downsample import bucket_means
from momentumbot.reporting.run_data import RunData, load_run
from momentumbot.reporting.symbols import (
    Bars,
    band_line,
    fill_marks,
    marks,
    open_store,
    position_path,
    read_bars,
    symbol_fills,
)

log = logging.getLogger("momentumbot.report")

PLOTS_DIR = "plots"
SYMBOLS_DIR = "symbols"
REPORT_FILE = "report.html"


@dataclass
class SymbolPass:
    """What one pass over the run's symbols leaves for the charts and the report."""

    capital: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, tuple[int, int]] = field(default_factory=dict)  # symbol -> (missing, of)
    notices: list[str] = field(default_factory=list)


def pass_over_symbols(
    run: RunData,
    bounds: np.ndarray,
    on_chart: Callable[[SymbolChart], None],
) -> SymbolPass:
    """Read each symbol's bars once: count missing minutes, build the chart of each traded
    symbol (handed to ``on_chart`` and then dropped, so memory stays flat) and average its
    capital over the allocation chart's buckets."""
    out = SymbolPass()
    store, why = open_store(run.store)
    traded = set(run.traded_symbols)
    n = run.axis.n_minutes
    if store is None and traded:
        out.notices.append(
            f"Prices are not drawn: {why}. Symbol charts show the fills and the position "
            "only, and capital by symbol is marked at the last fill price."
        )
    config = run.config
    if store is not None and config is None and traded:
        out.notices.append("The band level is not drawn: the run's config could not be read.")
    symbols = [*run.symbols, *sorted(traded - set(run.symbols))]
    realised = dict(
        zip(run.pnl["symbol"].astype(str), run.pnl["realised_pnl"].astype(float), strict=True)
    )
    groups = run.fills.groupby(run.fills["symbol"].astype(str)).indices if len(run.fills) else {}
    empty = run.fills.iloc[0:0]
    for symbol, (bars, problem) in zip(symbols, _prefetch(store, symbols, run), strict=True):
        if problem:
            out.notices.append(problem)
        if bars is not None:
            out.missing[symbol] = (bars.missing_minutes, n)
        if symbol not in traded:
            continue
        rows = groups.get(symbol)
        fills = symbol_fills(empty if rows is None else run.fills.iloc[rows], symbol, run.axis)
        position = position_path(fills, n)
        close = bars.close if bars is not None else None
        band = band_line(bars, run.axis, config.strategy) if bars is not None and config else None
        mark = fill_marks(fills, n)
        if close is not None:
            # before its first bar (or without any) a position is marked at its fill price
            last_close = marks(close)
            mark = np.where(np.isnan(last_close), mark, last_close)
        value = np.where(position != 0, position * mark, 0.0)
        out.capital[symbol] = bucket_means(value, bounds)
        chart = SymbolChart(
            symbol=symbol,
            close=close,
            band=band,
            fills=fills,
            position=position,
            missing_minutes=bars.missing_minutes if bars is not None else None,
            realised_pnl=realised.get(symbol),
            note=None if bars is not None else "Bar store unavailable: only fills and position",
        )
        on_chart(chart)
    return out


_PREFETCH = 4


def _prefetch(
    store: BarStore | None, symbols: list[str], run: RunData
) -> Iterator[tuple[Bars | None, str | None]]:
    """Each symbol's bars in order, read a few symbols ahead on a thread (Parquet decoding
    releases the GIL, so reading overlaps drawing)."""
    if store is None:
        for _symbol in symbols:
            yield None, None
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-bars") as pool:
        pending: deque[Future[tuple[Bars | None, str | None]]] = deque()
        ahead = iter(symbols)
        for symbol in itertools.islice(ahead, _PREFETCH):
            pending.append(pool.submit(_bars, store, symbol, run))
        while pending:
            result = pending.popleft().result()
            for symbol in itertools.islice(ahead, 1):
                pending.append(pool.submit(_bars, store, symbol, run))
            yield result


def _bars(store: BarStore, symbol: str, run: RunData) -> tuple[Bars | None, str | None]:
    try:
        return read_bars(store, symbol, run.axis), None
    except (OSError, MomentumbotError) as exc:
        return None, f"{symbol}: its bars could not be read ({exc}); no price drawn."


def missing_bar_notices(missing: dict[str, tuple[int, int]], limit: int = 12) -> list[str]:
    """Plain sentences on symbols that lack bars in some of the run's minutes."""
    gaps = {s: m for s, m in missing.items() if m[0] > 0 and m[1] > 0}
    if not gaps:
        return []
    none = sorted(s for s, (m, of) in gaps.items() if m == of)
    some = sorted((s for s in gaps if s not in none), key=lambda s: -gaps[s][0])
    lines: list[str] = []
    if none:
        lines.append(f"No bars in the bar store for the run's sessions: {', '.join(none)}.")
    if some:
        parts = [
            f"{s} {count(m)} of {count(of)} ({_share(m, of)})"
            for s, (m, of) in ((s, gaps[s]) for s in some[:limit])
        ]
        more = f", and {len(some) - limit} more" if len(some) > limit else ""
        lines.append(
            f"Missing bars: {len(some)} symbol{'s' if len(some) != 1 else ''} "
            f"{'have' if len(some) != 1 else 'has'} no bar in some regular-session minutes "
            f"(the engine skips those minutes for them): {'; '.join(parts)}{more}."
        )
    return lines


def _share(part: int, whole: int) -> str:
    share = part / whole * 100
    return "<0.1 %" if share < 0.1 else f"{share:.1f} %"


def run_notices(run: RunData) -> list[str]:
    """Plain sentences on what is unusual about the run itself."""
    lines: list[str] = []
    run_info: dict[str, Any] = run.summary.get("run") or {}
    if run.axis.n_minutes == 0:
        lines.append("The run has no minutes: there is nothing to chart.")
    if len(run.fills) == 0:
        orders = run_info.get("orders")
        placed = f" It placed {count(orders)} orders; none filled." if orders else ""
        lines.append(
            "No trades: the strategy never held a position in this run, so equity stayed "
            f"at {usd(run.start_equity)}.{placed}"
        )
    if run.axis.n_sessions == 1:
        lines.append(
            "One session only: volatility, Sharpe and Sortino need at least two daily "
            "returns and are n/a; there is no monthly table."
        )
    held = run_info.get("final_positions") or {}
    if held:
        listed = ", ".join(f"{s} {count(q)} shares" for s, q in sorted(held.items()))
        lines.append(f"Positions still open at the end (counted as unrealised P&L): {listed}.")
    carries = run.figures.get("overnight_carries")
    if isinstance(carries, int) and carries > 0:
        lines.append(
            f"{carries} flatten order(s) could not fill before the close and were carried overnight."
        )
    return lines


def _clear_symbol_pngs(run: RunData) -> Path:
    symbol_dir = run.run_dir / PLOTS_DIR / SYMBOLS_DIR
    if symbol_dir.is_dir():
        for old in symbol_dir.glob("*.png"):
            old.unlink()
    return symbol_dir


def _capital(
    run: RunData, bounds: np.ndarray, sweep: SymbolPass
) -> tuple[CapitalBuckets, str | None]:
    """The allocation chart's capital buckets and its note."""
    note = None
    if run.traded_symbols and any(n.startswith("Prices are not drawn") for n in sweep.notices):
        note = "capital marked at the last fill price (no bar store)"
    return CapitalBuckets(bounds=bounds, by_symbol=sweep.capital), note


def _symbol_plots(
    run: RunData,
    on_chart: Callable[[SymbolChart], None] | None,
    symbol_plots: bool,
    worker: ChartWorker | None = None,
) -> tuple[list[Path], SymbolPass, CapitalBuckets, str | None]:
    """The pass over the symbols, each one's plots/symbols/<SYM>.png drawn here or handed
    to ``worker`` (none when ``symbol_plots`` is false); returns their paths, the pass, the
    capital buckets and the allocation chart's note."""
    symbol_dir = _clear_symbol_pngs(run)
    bounds = capital_buckets(run.axis)
    written: list[Path] = []
    figure: Any = None

    def draw(chart: SymbolChart) -> None:
        nonlocal figure
        if symbol_plots:
            path = symbol_dir / f"{chart.symbol}.png"
            if worker is not None:
                worker.symbol(symbol_lines(chart, run.axis, run.run_dir.name), path)
            else:
                if figure is None:
                    from momentumbot.reporting.symbol_chart import SymbolFigure

                    figure = SymbolFigure(run.axis, run.run_dir.name)
                figure.draw(chart, path)
            written.append(path)
        if on_chart is not None:
            on_chart(chart)

    try:
        sweep = pass_over_symbols(run, bounds, draw)
    finally:
        if figure is not None:
            figure.close()
    return (written, sweep, *_capital(run, bounds, sweep))


def _general_plots(run: RunData, capital: CapitalBuckets, note: str | None) -> list[Path]:
    from momentumbot.reporting import run_charts

    plot_dir = run.run_dir / PLOTS_DIR
    return [
        run_charts.equity_png(run, plot_dir / "equity.png"),
        run_charts.allocation_png(run, capital, plot_dir / "allocation.png", note),
        run_charts.pnl_by_symbol_png(run, plot_dir / "pnl_by_symbol.png"),
        run_charts.returns_by_day_png(run, plot_dir / "returns_by_day.png"),
    ]


def write_plots(
    run: RunData,
    on_chart: Callable[[SymbolChart], None] | None = None,
    *,
    symbol_plots: bool = True,
) -> tuple[list[Path], SymbolPass, CapitalBuckets]:
    """Write plots/*.png and (unless ``symbol_plots`` is false) plots/symbols/<SYM>.png;
    returns their paths, the symbol pass and the capital buckets. ``on_chart`` also sees
    each symbol's chart data."""
    written, sweep, capital, note = _symbol_plots(run, on_chart, symbol_plots)
    return _general_plots(run, capital, note) + written, sweep, capital


def write_report(
    run_dir: Path, *, symbol_plots: bool = True, worker: ChartWorker | None = None
) -> Path:
    """Write every plot and report.html into ``run_dir``; returns report.html's path.

    Never raises for a run with no trades, of one session, with missing bars or without
    its bar store: the report says so instead. Raises DataError when ``run_dir`` is not a
    run folder. ``symbol_plots=False`` skips plots/symbols/*.png (the slow part of a wide
    run; report.html still has every symbol's interactive chart). With a ``worker``
    (:meth:`ChartWorker.start`, ended here), every PNG is drawn in that process while this
    one reads the bars and builds the page (and never imports matplotlib); the files are
    the same, and if the worker fails they are drawn here.
    """
    with _collector_paused():
        return _write_report(Path(run_dir), symbol_plots, worker)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the report is written: its full passes walk
    every object of the libraries loaded (about 0.1 s each, one or two per report) for the
    few cycles the report's figures leave, which go at the next pass after it."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _write_report(run_dir: Path, symbol_plots: bool, worker: ChartWorker | None) -> Path:
    t0 = time.perf_counter()
    from momentumbot.reporting.html import render_report, symbol_payload

    try:
        run = load_run(run_dir)
        if worker is not None:
            worker.begin(run, symbol_plots)
        symbol_data: dict[str, Any] = {}

        def keep(chart: SymbolChart) -> None:
            symbol_data[chart.symbol] = symbol_payload(chart, run.axis)

        written, sweep, capital, note = _symbol_plots(run, keep, symbol_plots, worker)
        general = [run.run_dir / PLOTS_DIR / name for name in GENERAL_FILES]
        if worker is not None:
            worker.allocation(capital.bounds, capital.by_symbol, note)
        else:
            general = _general_plots(run, capital, note)
        notices = [
            *run.notices,
            *run_notices(run),
            *sweep.notices,
            *missing_bar_notices(sweep.missing),
        ]
        text = render_report(
            run,
            capital=capital,
            symbol_data=symbol_data,
            notices=notices,
            plot_files=general + written,
        )
        if worker is not None and worker.finish() is None:
            written = _symbol_plots(run, None, symbol_plots)[0]
            general = _general_plots(run, capital, note)
    finally:
        if worker is not None:
            worker.close()
    t_plots = time.perf_counter() - t0
    path = run.run_dir / REPORT_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    log.info(
        "report written to %s (%d plots, %.1f MB) in %.2f s (plots and page %.2f s)",
        path, len(general) + len(written), path.stat().st_size / 1e6,
        time.perf_counter() - t0, t_plots,
    )  # fmt: skip
    return path

"""The report's chart data: what each Plotly chart of report.html draws, thinned for
drawing (JSON-ready numbers, the minute axis' breaks, the equity, capital, P&L, daily and
symbol payloads)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.reporting.chart_data import (
    CapitalBuckets,
    SymbolChart,
    allocation_layers,
    pnl_rows,
    session_ffill,
)
from momentumbot.reporting.downsample import minmax_indices, step_changes, step_points
from momentumbot.reporting.metrics import (
    daily_returns,
    drawdown,
)
from momentumbot.reporting.run_data import MinuteAxis, RunData

MAX_LINE_POINTS = 2400
MAX_SYMBOL_POINTS = 1600


def json_numbers(values: Iterable[float] | np.ndarray, decimals: int) -> list[float | None]:
    """JSON-ready numbers: rounded, NaN and inf as null."""
    array = np.round(np.asarray(values, dtype=float), decimals)
    out: list[float | None] = array.tolist()
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array))
        for i in bad.tolist():
            out[i] = None
    return out


def _ints(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(values, dtype=np.int64).tolist()]


def price_decimals(prices: np.ndarray) -> int:
    finite = prices[np.isfinite(prices)]
    top = float(np.abs(finite).max()) if finite.size else 100.0
    return 4 if top < 10 else 3 if top < 1000 else 2


def range_breaks(axis: MinuteAxis) -> list[dict[str, Any]]:
    """Plotly range breaks (in New York wall minutes) that hide every night, weekend and
    holiday between the run's sessions: one break group per gap length."""
    if axis.n_sessions < 2:
        return []
    wall = axis.wall_minutes()
    starts = axis.session_start
    ends = np.append(starts[1:], axis.n_minutes) - 1
    # a break starts one minute after the last bar's start (so the 16:00 close stays in)
    gap_from = wall[ends[:-1]] + 2
    gap_to = wall[starts[1:]]
    groups: dict[int, list[int]] = {}
    for begin, end in zip(gap_from.tolist(), gap_to.tolist(), strict=True):
        if end > begin:
            groups.setdefault(end - begin, []).append(begin)
    return [{"dvalue": d, "values": v} for d, v in sorted(groups.items())]


def equity_payload(run: RunData) -> dict[str, Any]:
    closes = run.axis.wall_minutes() + 1
    equity = run.equity["equity"].to_numpy(dtype=float)
    idx = minmax_indices(equity, MAX_LINE_POINTS)
    dd = drawdown(run.equity, start_equity=run.start_equity).to_numpy()
    didx = minmax_indices(dd, MAX_LINE_POINTS)
    out: dict[str, Any] = {
        "start": run.start_equity,
        "strategy": {"t": _ints(closes[idx]), "y": json_numbers(equity[idx], 2)},
        "drawdown": {"t": _ints(closes[didx]), "y": json_numbers(dd[didx], 6)},
    }
    bench = run.benchmark
    if bench is not None and len(bench) == equity.size and equity.size:
        b = bench["equity"].to_numpy(dtype=float)
        bidx = minmax_indices(b, MAX_LINE_POINTS)
        bdd = drawdown(bench, start_equity=run.start_equity).to_numpy()
        bdidx = minmax_indices(bdd, MAX_LINE_POINTS)
        out["benchmark"] = {"t": _ints(closes[bidx]), "y": json_numbers(b[bidx], 2)}
        out["benchmark_drawdown"] = {"t": _ints(closes[bdidx]), "y": json_numbers(bdd[bdidx], 6)}
    return out


def allocation_payload(run: RunData, capital: CapitalBuckets) -> dict[str, Any]:
    if run.axis.n_minutes == 0:
        return {"t": [], "layers": []}
    layers = allocation_layers(run, capital)
    middle = (capital.bounds[:-1] + capital.bounds[1:] - 1) // 2
    t = run.axis.wall_minutes(middle) + 1
    return {
        "t": _ints(t),
        "layers": [{"name": name, "y": json_numbers(values, 2)} for name, values in layers.items()],
    }


def pnl_payload(run: RunData) -> dict[str, Any]:
    rows, note = pnl_rows(run.pnl)
    return {
        "symbols": rows["symbol"].astype(str).tolist(),
        "realised": json_numbers(rows["realised_pnl"].to_numpy(dtype=float), 2),
        "commissions": json_numbers(rows["commissions"].to_numpy(dtype=float), 2),
        "note": note,
    }


def daily_payload(run: RunData) -> dict[str, Any]:
    daily = daily_returns(run.equity, start_equity=run.start_equity)
    out: dict[str, Any] = {
        "dates": [f"{pd.Timestamp(d):%Y-%m-%d}" for d in daily.index],
        "strategy": json_numbers(daily.to_numpy(), 6),
    }
    if run.benchmark is not None and len(run.benchmark):
        bench = daily_returns(run.benchmark, start_equity=run.start_equity).reindex(daily.index)
        out["benchmark"] = json_numbers(bench.to_numpy(), 6)
    return out


def symbol_payload(chart: SymbolChart, axis: MinuteAxis) -> dict[str, Any]:
    """One symbol's interactive chart data, thinned for drawing."""
    wall = axis.wall_minutes()
    f = chart.fills
    prices = f.price if chart.close is None else chart.close
    decimals = price_decimals(prices)
    out: dict[str, Any] = {
        "fills": {
            "t": _ints(wall[f.index]),
            "p": json_numbers(f.price, decimals),
            "q": _ints(f.signed),
            "after": _ints(f.after),
            "k": [str(k) for k in f.kind.tolist()],
        },
        "note": chart.note,
        "missing": chart.missing_minutes,
        "realised": chart.realised_pnl,
    }
    if chart.close is not None:
        price = session_ffill(chart.close, axis)
        idx = minmax_indices(price, MAX_SYMBOL_POINTS)
        out["close"] = {"t": _ints(wall[idx]), "y": json_numbers(price[idx], decimals)}
    if chart.band is not None:
        keep = step_points(chart.band.level, MAX_SYMBOL_POINTS)
        out["level"] = {"t": _ints(wall[keep]), "y": json_numbers(chart.band.level[keep], decimals)}
        # the exit line is the level less buffer % of the session's reference: the page
        # derives it from these few reference steps instead of carrying a third line
        refs = step_changes(chart.band.ref)
        out["ref"] = {"t": _ints(wall[refs]), "y": json_numbers(chart.band.ref[refs], decimals)}
        out["buffer"] = chart.band.buffer
    keep = step_points(chart.position.astype(float), MAX_SYMBOL_POINTS)
    out["position"] = {"t": _ints(wall[keep]), "y": _ints(chart.position[keep])}
    return out

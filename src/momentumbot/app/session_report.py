"""A report for each trading session, written after its close while the bot runs on:
`sessions/YYYY-MM-DD/` gets that session's files (the run folder's contract, cut to the
session: its orders, fills, equity, allocations, figures and plots, report.html), and the
run's own report to date is refreshed. The engine's tables are taken on the event loop; the
files are written in a worker thread, so trading never waits for them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.app.backtest import write_results
from momentumbot.app.trade_files import write_trade_report
from momentumbot.config.schema import AppConfig
from momentumbot.engine.backtest import BacktestResult, MinutePlan
from momentumbot.engine.live import LiveEngine
from momentumbot.notify import Event, Notifier
from momentumbot.reporting.report import write_report

log = logging.getLogger("momentumbot.trade")

SESSIONS_DIR = "sessions"


def _iso(ns: int) -> str:
    return str(np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="s")) + "+00:00"


def _within(df: pd.DataFrame, col: str, lo: str, hi: str) -> pd.DataFrame:
    t = df[col].astype(str)
    return df[(t >= lo) & (t <= hi)].reset_index(drop=True)


def session_result(result: BacktestResult, day: pd.Timestamp) -> BacktestResult:
    """The run's result cut to one session: its minutes, orders, fills and allocations; its
    start equity is the equity before the session (the run's initial cash on the first)."""
    grid = result.plan.grid
    found = [n for n, d in enumerate(grid.sessions) if d == pd.Timestamp(day)]
    if not found:
        raise ValueError(f"{pd.Timestamp(day).date()} is not a session of the run")
    i = found[0]
    lo_ns, hi_ns = int(grid.open_ns[i]), int(grid.close_ns[i])
    lo, hi = _iso(lo_ns), _iso(hi_ns)
    mask = grid.session == i
    sub_grid = grid.session_slice(i, i + 1)
    plan = MinutePlan(sub_grid, result.plan.flags[mask], result.plan.month_id[mask], 0)
    eq_t = result.equity["time"].astype(str)
    before = result.equity[eq_t < lo]
    start = float(before["equity"].iloc[-1]) if len(before) else result.initial_cash
    fills = result.fills
    upto = fills[fills["time"].astype(str) <= hi]
    signed = np.where(upto["side"].astype(str) == "BUY", 1, -1) * upto["quantity"].to_numpy()
    held = pd.Series(signed).groupby(upto["symbol"].astype(str).to_numpy()).sum()
    positions = {s: int(held.get(s, 0)) for s in result.symbols}
    day_fills = _within(fills, "time", lo, hi)
    bench = result.benchmark_equity
    bench_before = bench[bench["time"].astype(str) < lo]
    day_bench = _within(bench, "time", lo, hi)
    if len(bench_before):  # the benchmark is scaled to start the session at the same equity
        scale = start / float(bench_before["equity"].iloc[-1])
        day_bench = day_bench.assign(
            cash=day_bench["cash"] * scale,
            positions_value=day_bench["positions_value"] * scale,
            equity=day_bench["equity"] * scale,
        )
    return dataclasses.replace(
        result,
        plan=plan,
        orders=_within(result.orders, "decided_at", lo, hi),
        fills=day_fills,
        allocations=_within(result.allocations, "time", lo, hi),
        equity=_within(result.equity, "time", lo, hi),
        benchmark_equity=day_bench,
        benchmark_fills=_within(result.benchmark_fills, "time", lo, hi),
        final_positions=positions,
        overnight_carries=0,
        initial_cash=start,
        risk_events=_within(result.risk_events, "time", lo, hi)
        if "time" in result.risk_events.columns
        else result.risk_events,
    )


def write_session(cfg: AppConfig, result: BacktestResult, run_dir: Path, day: pd.Timestamp) -> Path:
    """sessions/YYYY-MM-DD/ with the session's files and report.html; returns the folder."""
    from momentumbot.reporting.report import write_report

    out = run_dir / SESSIONS_DIR / str(pd.Timestamp(day).date())
    out.mkdir(parents=True, exist_ok=True)
    write_results(cfg, session_result(result, day), out, engine_seconds=0.0,
                  notes=(f"session {pd.Timestamp(day).date()} of the trading run in {run_dir}",))  # fmt: skip
    write_report(out, symbol_plots=len(result.symbols) <= 50)
    return out


def backtest_of_session(cfg: AppConfig, day: pd.Timestamp) -> float | None:
    """The return of a backtest of the same session on the bar store's bars (`[data] store`),
    when the store has that session's bars for every symbol; None otherwise."""
    from momentumbot.data.store import BarStore
    from momentumbot.domain.errors import MomentumbotError
    from momentumbot.engine.backtest import run_backtest

    store_dir = Path(cfg.data.store)
    if not store_dir.is_dir():
        return None
    day = pd.Timestamp(day)
    lo = int(pd.Timestamp(day.date(), tz="America/New_York").tz_convert("UTC").value)
    hi = lo + 24 * 3600 * 10**9
    try:
        store = BarStore(store_dir)
        if not all(store.has(s) and len(store.read_arrays(s, lo, hi)) for s in cfg.symbols):
            return None
        result = run_backtest(cfg, store, start=str(day.date()), end=str(day.date()))
    except (MomentumbotError, OSError, ValueError) as exc:
        log.info("no backtest of session %s to compare with: %s", day.date(), exc)
        return None
    if not len(result.equity):
        return None
    return float(result.equity["equity"].iloc[-1]) / result.initial_cash - 1


def session_text(folder: Path, backtest_return: float | None = None) -> str:
    """The session-summary alert: the session's equity, P&L against its buy-and-hold (and the
    backtest of the same session when the bar store has its bars), trades, and where its
    report is."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    run, bench = summary.get("run", {}), summary.get("benchmark", {})

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x * 100:+.2f} %"

    start, final = summary.get("start_equity") or 0.0, summary.get("final_equity") or 0.0
    return (
        f"equity {final:,.2f} USD, P&L {final - start:+,.2f} ({pct(summary.get('total_return'))}; "
        f"buy-and-hold {pct(bench.get('total_return'))}"
        + (
            ""
            if backtest_return is None
            else f"; the backtest of the session {pct(backtest_return)}"
        )
        + f"), {run.get('fills', 0)} fills, "
        f"{summary.get('round_trips', 0)} round trips; report: {folder / 'report.html'}"
    )


def session_job(
    cfg: AppConfig,
    engine: LiveEngine,
    run_dir: Path,
    day: pd.Timestamp,
    facts: dict[str, Any],
    notify: Notifier,
    *,
    refresh: bool,
) -> Callable[[], Path]:
    """The work after a session's close, for a worker thread: its report (sessions/DAY/), its
    summary alert, and (when `refresh`) the run's report to date. The engine's tables and the
    run's facts are taken now, on the event loop; the job only writes files."""
    result = engine.result()
    plots = len(facts["symbols"]) <= 50

    def job() -> Path:
        folder = write_session(cfg, result, run_dir, day)
        if notify.enabled:
            notify.event(
                Event.SESSION_SUMMARY, f"session {day.date()}",
                session_text(folder, backtest_of_session(cfg, day)),
                key=f"session {day.date()}",
            )  # fmt: skip
        if refresh:
            write_trade_report(cfg, engine, run_dir, **facts, result=result)
            write_report(run_dir, symbol_plots=plots)
        return folder

    return job


class SessionReports:
    """Runs the per-session reports in worker threads; `drain()` waits for them (the run's
    final report must not race them). A failed report is logged, never raised: trading and
    the journal do not depend on it."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Task[None]] = []
        self.written: list[Path] = []

    def start(self, job: Callable[[], Path], what: str) -> None:
        async def run() -> None:
            try:
                self.written.append(await asyncio.to_thread(job))
                log.info("%s written: %s", what, self.written[-1])
            except Exception as exc:
                log.error("%s not written: %s", what, exc, exc_info=True)

        self.pending = [t for t in self.pending if not t.done()]
        self.pending.append(asyncio.get_running_loop().create_task(run(), name=what))

    async def drain(self) -> None:
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)
        self.pending = []

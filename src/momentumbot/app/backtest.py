"""Composition of a backtest: config + store -> engine -> run folder + figures."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot import __version__
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.engine.backtest import BacktestResult, BarSource, run_backtest
from momentumbot.engine.pipeline import trim_heap
from momentumbot.engine.time_text import iso_categorical
from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.metrics import compute_figures, fill_tables, to_jsonable
from momentumbot.reporting.minute_files import MinuteFiles
from momentumbot.risk.limits import RiskLimits

log = logging.getLogger("momentumbot.backtest")


@dataclass(frozen=True)
class BacktestRun:
    """A finished backtest: where it was written and its figures."""

    out_dir: Path
    summary: dict[str, Any]
    result: BacktestResult
    seconds: float


def default_run_dir(root: Path = Path("runs")) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    path = root / f"backtest-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"backtest-{stamp}-{n}"
    return path


def _attach_log(out_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(out_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("momentumbot")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def backtest_to_folder(
    cfg: AppConfig,
    source: BarSource,
    out_dir: Path,
    *,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    notes: Sequence[str] = (),
    store_path: Path | None = None,
) -> BacktestRun:
    """Run a backtest and write its run folder; returns the figures."""
    syms = list(symbols) if symbols else list(cfg.symbols)
    if not syms:
        raise ConfigError(
            "symbols: the symbol list is empty; set `symbols = [...]` in the config or pass --symbols"
        )
    cfg = cfg.model_copy(update={"symbols": syms})
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = _attach_log(out_dir)
    try:
        for note in notes:
            log.warning(note)
        log.info("backtest of %d symbols: %s", len(syms), ", ".join(syms))
        t0 = time.perf_counter()
        # allocation rows, equity and benchmark rows are formatted on worker threads while
        # the engine goes on
        allocations = rf.CsvStream(
            out_dir / "allocations.csv", rf.ALLOCATIONS_COLUMNS, background=True
        )
        minutes = MinuteFiles(out_dir)
        try:
            result = run_backtest(
                cfg,
                source,
                symbols=syms,
                start=start,
                end=end,
                progress=progress,
                allocation_sink=allocations.write,
                minute_sink=minutes.write,
            )
        except BaseException:
            allocations.abort()
            minutes.abort()
            raise
        t_engine = time.perf_counter() - t0
        trim_heap()  # the kernel's tables, freed once collected into the result's frames
        for halt in result.risk_events[result.risk_events["event"] == "halt"].itertuples():
            log.warning(
                "risk: daily loss %.2f USD reached max_daily_loss at %s: flattened, and no more "
                "orders that session",
                halt.loss, halt.time,
            )  # fmt: skip
        try:
            summary = write_results(
                cfg, result, out_dir, engine_seconds=t_engine, notes=notes,
                store_path=store_path, allocations_written=True, minutes=minutes,
            )  # fmt: skip
        except BaseException:
            allocations.abort()
            minutes.abort()
            raise
        allocations.close()
        seconds = time.perf_counter() - t0
        # write: from the engine's end to the last file written (the allocation rows'
        # formatting that overlapped the engine is in allocations_seconds, not here)
        result.timings.update(
            write=seconds - t_engine,
            total=seconds,
            allocations_seconds=allocations.seconds,
            minutes_seconds=minutes.seconds,
            minutes_cpu_seconds=minutes.cpu_seconds,
        )
        log.info(
            "run written to %s in %.2f s (load %.2f s, engine %.2f s, write %.2f s)",
            out_dir, seconds, result.timings["load"], result.timings["kernel"], result.timings["write"],
        )  # fmt: skip
        return BacktestRun(out_dir=out_dir, summary=summary, result=result, seconds=seconds)
    finally:
        logging.getLogger("momentumbot").removeHandler(handler)
        handler.close()


def _isoformat_utc(times: pd.Series) -> Any:
    """Each time's Timestamp.isoformat(), vectorised (no Python per row) when all are UTC
    whole seconds, as bar labels are: '2024-01-02T14:30:00+00:00' (the engine's own text:
    a categorical of each distinct time, its Arrow text ready for the CSV writer)."""
    ns = times.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if str(times.dt.tz) != "UTC" or np.any(ns % 1_000_000_000):
        return times.map(lambda t: t.isoformat())
    return iso_categorical(ns)


def write_results(
    cfg: AppConfig,
    result: BacktestResult,
    out_dir: Path,
    *,
    engine_seconds: float,
    notes: Sequence[str] = (),
    store_path: Path | None = None,
    allocations_written: bool = False,
    minutes: MinuteFiles | None = None,
) -> dict[str, Any]:
    """Write every file of the run folder contract and return summary.json's content.

    The CSV files are formatted on a worker thread while the figures are computed here;
    every file is written when this returns. ``allocations_written``: allocations.csv is
    being streamed by the caller (a CsvStream), so it is not written here. ``minutes``:
    equity.csv and benchmark.csv were streamed while the engine ran; they are closed here,
    before summary.json (the caller aborts them if this fails).
    """
    files = rf.BackgroundWriter()
    try:
        summary = _write_files(
            files, cfg, result, out_dir, engine_seconds=engine_seconds, notes=notes,
            store_path=store_path, allocations_written=allocations_written, minutes=minutes,
        )  # fmt: skip
    except BaseException:
        files.discard()
        raise
    files.close()
    return summary


def _write_files(
    files: rf.BackgroundWriter,
    cfg: AppConfig,
    result: BacktestResult,
    out_dir: Path,
    *,
    engine_seconds: float,
    notes: Sequence[str],
    store_path: Path | None,
    allocations_written: bool,
    minutes: MinuteFiles | None,
) -> dict[str, Any]:
    rf.write_config(cfg, out_dir / "config.toml")
    files.csv(result.orders, out_dir / "orders.csv", rf.ORDERS_COLUMNS)
    files.csv(result.fills, out_dir / "fills.csv", rf.FILLS_COLUMNS)
    if minutes is None:
        files.csv(result.equity, out_dir / "equity.csv", rf.EQUITY_COLUMNS)
    if not allocations_written and (
        len(result.allocations) or not (out_dir / "allocations.csv").exists()
    ):
        files.csv(result.allocations, out_dir / "allocations.csv", rf.ALLOCATIONS_COLUMNS)
    if minutes is None:
        files.csv(result.benchmark_equity, out_dir / "benchmark.csv", rf.BENCHMARK_COLUMNS)
    fills = result.fills
    by_symbol, trips = fill_tables(fills, result.final_positions, result.last_prices)
    files.csv(by_symbol, out_dir / "pnl_by_symbol.csv")
    figures = compute_figures(
        result.equity,
        fills,
        start_equity=result.initial_cash,
        overnight_carries=result.overnight_carries,
        trips=trips,
    )
    if len(trips):
        for col in ("entry_time", "exit_time"):
            trips[col] = _isoformat_utc(trips[col])
    files.csv(trips, out_dir / "round_trips.csv")
    bench = compute_figures(
        result.benchmark_equity,
        result.benchmark_fills,
        start_equity=result.initial_cash,
        overnight_carries=0,
    )
    sessions = result.plan.grid.sessions[result.plan.n_warmup_sessions :]
    summary: dict[str, Any] = dict(figures)
    summary["benchmark"] = bench
    summary["run"] = {
        "kind": "backtest",
        "version": __version__,
        "symbols": result.symbols,
        "store": str(store_path.resolve()) if store_path is not None else None,
        "first_session": str(sessions[0].date()),
        "last_session": str(sessions[-1].date()),
        "warmup_sessions": result.plan.n_warmup_sessions,
        "bars_used": result.bars_used,
        "orders": len(result.orders),
        "fills": len(fills),
        "final_positions": {s: q for s, q in result.final_positions.items() if q},
        "engine_seconds": round(engine_seconds, 4),
        "notes": list(notes),
    }
    limits = risk_limits_set(cfg)
    if limits or cfg.portfolio.settlement == "T+1":  # the settled-cash cuts are in risk.csv
        files.csv(result.risk_events, out_dir / "risk.csv", rf.RISK_COLUMNS)
        summary["risk"] = risk_summary(limits, result.risk_events)
    files.wait()
    if minutes is not None:
        minutes.close()
    # summary.json last: a folder with it is complete
    rf.write_json(to_jsonable(summary), out_dir / "summary.json")
    return summary


def risk_limits_set(cfg: AppConfig) -> dict[str, float]:
    """The [risk] limits the minute step applies that this config sets (not 0)."""
    return RiskLimits.from_config(cfg.risk).set_limits()


def risk_summary(limits: dict[str, float], events: pd.DataFrame) -> dict[str, Any]:
    """summary.json's `risk` object: the limits set and how often each acted."""
    halts = events[events["event"] == "halt"]
    return {
        "limits": limits,
        "orders_cut": int((events["event"] == "cut").sum()),
        "orders_refused": int((events["event"] == "refused").sum()),
        "halts": [str(t) for t in halts["time"]],
    }

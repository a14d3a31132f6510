"""What a trading run reads from and writes to its run folder besides the journal: the
stored config a resume must match, and the report (the backtest's files plus the run's
trading facts in summary.json)."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from momentumbot.app.backtest import write_results
from momentumbot.config.loader import parse_config
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.engine.backtest import BacktestResult
from momentumbot.engine.live import LiveEngine
from momentumbot.journal import journal as jr
from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.metrics import to_jsonable
from momentumbot.trading.run import RunStats

log = logging.getLogger("momentumbot.trade")

# sections a resumed run must have unchanged (the rest, e.g. [broker] and [risk], may change)
FROZEN_SECTIONS = ("portfolio", "strategy", "allocation", "execution", "session")


def check_resume(
    j: jr.Journal, cfg: AppConfig, symbols: list[str], kind: str, run_dir: Path
) -> str:
    """The run id of the run being resumed, or a ConfigError saying what differs."""
    run_id = j.get("run_id") or ""
    stored = j.get("config") or ""
    try:
        stored_cfg = parse_config(tomllib.loads(stored), f"{j.path} (config)")
    except (ValueError, ConfigError) as exc:
        raise jr.JournalError(f"{j.path}: the stored config is unreadable: {exc}") from None
    stored_symbols = json.loads(j.get("symbols") or "[]")
    if stored_symbols != symbols:
        raise ConfigError(
            f"{run_dir}: this run trades {stored_symbols}, not "
            f"{symbols}; use the same symbols or a new --out folder"
        )
    mine = cfg.model_dump(mode="json")
    theirs = stored_cfg.model_dump(mode="json")
    for section in FROZEN_SECTIONS:
        if mine[section] != theirs[section]:
            raise ConfigError(
                f"{run_dir}: the run was started with a different [{section}] section; "
                "resume it with the same config (its config.toml) or trade into a new --out folder"
            )
    stored_kind = j.get("kind") or "paper"
    if stored_kind != kind:
        raise ConfigError(f"{run_dir}: this is a {stored_kind} run; resume it as such")
    log.info("resuming run %s from its journal", run_id)
    return run_id


def write_trade_report(
    cfg: AppConfig,
    engine: LiveEngine,
    run_dir: Path,
    stats: RunStats,
    *,
    kind: str,
    run_id: str,
    account: str,
    broker: str,
    client_id: int,
    stop_reason: str,
    halted: str,
    blocked: np.ndarray,
    symbols: list[str],
    result: BacktestResult | None = None,
) -> dict[str, Any]:
    """The run folder's files and summary.json; `result` is the engine's tables taken before
    (a report written off the event loop must not read the engine while it steps)."""
    result = result if result is not None else engine.result()
    seconds = float(sum(stats.step_seconds))
    summary = write_results(cfg, result, run_dir, engine_seconds=seconds)
    summary["run"].update(
        kind=kind,
        run_id=run_id,
        account=account,
        broker=broker,
        client_id=client_id,
        journal=jr.JOURNAL_NAME,
        stop_reason=stop_reason,
        halted=halted,
        reconnects=stats.reconnects,
        outages=stats.outages,
        resubscribes=stats.resubscribes,
        adopted_executions=stats.adopted,
        resent_orders=stats.resent,
        rejected_orders=stats.rejected,
        blocked_symbols=[s for s, b in zip(symbols, blocked, strict=True) if b],
        step_ms_p50=_percentile_ms(stats.step_seconds, 50),
        step_ms_p99=_percentile_ms(stats.step_seconds, 99),
    )
    rf.write_json(to_jsonable(summary), run_dir / "summary.json")
    log.info(
        "report written to %s: %d orders, %d fills", run_dir, len(result.orders), len(result.fills)
    )
    return summary


def _percentile_ms(seconds: list[float], q: float) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 3) if seconds else None

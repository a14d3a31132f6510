"""A trading run as an operator sees it: one frozen snapshot, made from a live engine (the
bot's own) or from a run folder's journal (another process, another machine, after the run),
with the same figures either way."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.engine.live import LiveEngine
from momentumbot.journal import journal as jr
from momentumbot.risk.limits import RiskLimits
from momentumbot.trading.folder import LOCK_NAME

RECENT_FILLS = 20


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: int
    last: float
    value: float


@dataclass(frozen=True)
class SymbolRow:
    """One symbol's line: position, price, the allocator's budget and target, its last bar."""

    symbol: str
    position: int
    last: float
    budget: float
    target: int
    last_bar: str  # New York time of the latest bar seen ("" when not known)
    stale_seconds: float | None  # server time past that bar's close (None when not known)
    band: str = ""  # the momentum band: "long" / "flat" at its level, "-" before the first bar
    shadow_shares: int = 0  # the shadow book's position
    shadow_pnl: float = 0.0  # the shadow book's closed round trips today, net of costs


@dataclass(frozen=True)
class Live:
    """What only the running bot knows (its connection, its clock, its bars, its log)."""

    connection: str = "not running"
    server_time: str = ""
    paused: str = ""
    last_bar_ns: tuple[int, ...] = ()  # per symbol, -1 for none
    server_ns: int = 0
    log: tuple[str, ...] = ()
    step_seconds: tuple[float, ...] = ()
    reconnects: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class WorkingOrder:
    order_ref: str
    symbol: str
    side: str
    quantity: int
    filled: int
    reason: str
    state: str
    decided: str


@dataclass(frozen=True)
class Fill:
    time: str
    symbol: str
    side: str
    quantity: int
    price: float
    order_ref: str


@dataclass(frozen=True)
class RunSnapshot:
    run_dir: str
    run_id: str
    kind: str  # paper or live
    account: str
    state: str  # starting, trading, finished, stopped ...
    running: bool  # a process holds the run folder now
    stop_reason: str
    progress: str  # New York time up to which the minutes have been dealt with
    halted: str
    buys_halted: str
    session: str
    equity: float
    cash: float
    session_start_equity: float | None
    today_pnl: float | None
    positions: tuple[Position, ...]
    working: tuple[WorkingOrder, ...]
    orders: int
    fills: int
    recent_fills: tuple[Fill, ...]
    symbols: tuple[SymbolRow, ...] = ()
    series: tuple[tuple[str, float, float], ...] = ()  # (minute, equity, buy-and-hold) today
    orders_by_state: dict[str, int] | None = None
    risk: dict[str, float] | None = None  # the configured limits (0 = off)
    connection: str = "not running"
    server_time: str = ""
    paused: str = ""
    log: tuple[str, ...] = ()
    last_step_seconds: float | None = None
    reconnects: int = 0
    rejected: int = 0

    def to_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready values (no secret is ever in it: the journal has none)."""
        return asdict(self)


def band_text(e: LiveEngine, j: int) -> str:
    """The symbol's momentum band in words: its side and level (percent) from its reference."""
    st = e.st
    if not st.band_has[j]:
        return "-"
    side = "long" if st.band_long[j] else "flat"
    return f"{side} {float(st.band_level[j]):+.2f} % of {float(st.band_ref[j]):.2f}"


def _hhmm(ns: int) -> str:
    return pd.Timestamp(ns + NS_PER_MINUTE, tz="UTC").tz_convert(EXCHANGE_TZ).strftime("%H:%M")


def _ny(ns: int | None) -> str:
    if not ns:
        return ""
    return pd.Timestamp(int(ns), tz="UTC").tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M:%S")


def from_engine(
    engine: LiveEngine,
    meta: Mapping[str, str],
    journal: jr.Journal,
    *,
    run_dir: Path,
    running: bool,
    risk: Mapping[str, float] | None = None,
    live: Live | None = None,
) -> RunSnapshot:
    """The snapshot of a run whose engine holds its books (the bot's own, or a replay)."""
    e = engine
    live = live or Live()
    positions: list[Position] = []
    rows: list[SymbolRow] = []
    if e.started:
        alloc = e.last_allocation()
        for j, sym in enumerate(e.symbols):
            q = int(e.st.position[j])
            px = float(np.nan_to_num(e.st.last_close[j]))
            if q:
                positions.append(Position(sym, q, px, q * px))
            budget, target = alloc.get(sym, (0.0, 0))
            bar = live.last_bar_ns[j] if j < len(live.last_bar_ns) else -1
            stale = (
                (live.server_ns - bar - NS_PER_MINUTE) / 1e9
                if bar >= 0 and live.server_ns
                else None
            )
            rows.append(SymbolRow(
                sym, q, px, budget, target, _ny(bar) if bar >= 0 else "",
                None if stale is None else max(0.0, stale), band_text(e, j),
                int(e.st.shadow_shares[j]), round(float(e.st.shadow_realised[j]), 2),
            ))  # fmt: skip
    labels, equity_at, bench = e.session_marks()
    series = tuple(
        (_hhmm(int(t)), round(float(q), 2), round(float(b), 2))
        for t, q, b in zip(labels, equity_at, bench, strict=True)
    )
    # three small queries, not the whole tables: the live page asks every second
    by_state = journal.order_counts()
    working = tuple(
        WorkingOrder(
            o.order_ref,
            o.symbol,
            o.side,
            o.quantity,
            o.filled,
            o.reason,
            o.state,
            _ny(o.decided_ns),
        )
        for o in journal.open_orders()
    )
    recent = tuple(
        Fill(_ny(f.label_ns), f.symbol, f.side, f.quantity, f.price, f.order_ref)
        for f in journal.recent_fills(RECENT_FILLS)
    )
    start = e.session_start_equity() if e.started else None
    equity = e.equity() if e.started else e.cash_micro / 1e6
    return RunSnapshot(
        run_dir=str(run_dir),
        run_id=meta.get("run_id", ""),
        kind=meta.get("kind", ""),
        account=meta.get("account", ""),
        state=meta.get("state", ""),
        running=running,
        stop_reason=meta.get("stop_reason", ""),
        progress=_ny(int(meta.get("progress_ns", "0") or 0)),
        halted=meta.get("halted", ""),
        buys_halted=meta.get("buys_halted", ""),
        session=str(e.sessions[-1].date()) if e.started and e.sessions else "",
        equity=equity,
        cash=e.cash_micro / 1e6,
        session_start_equity=start,
        today_pnl=None if start is None else equity - start,
        positions=tuple(positions),
        working=working,
        orders=e.order_count(),
        fills=e.fill_count(),
        recent_fills=recent,
        symbols=tuple(rows),
        series=series,
        orders_by_state=by_state,
        risk=dict(risk or {}),
        connection=live.connection,
        server_time=live.server_time,
        paused=live.paused or meta.get("paused", ""),
        log=live.log,
        last_step_seconds=live.step_seconds[-1] if live.step_seconds else None,
        reconnects=live.reconnects,
        rejected=live.rejected,
    )


def risk_of(cfg: AppConfig) -> dict[str, float]:
    """The configured risk limits (0 = off), for the page and the status."""
    return RiskLimits.from_config(cfg.risk).as_dict()


def holder_pid(run_dir: Path) -> int | None:
    """The pid of the process trading in the folder now, None if none is."""
    lock = run_dir / LOCK_NAME
    if not lock.is_file():
        return None
    with open(lock, encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def read_run(run_dir: Path) -> RunSnapshot:
    """The snapshot of the run in `run_dir`, read from its journal without writing to it:
    works while the bot runs and after."""
    from momentumbot.config.loader import load_config
    from momentumbot.journal.replay import replay

    path = run_dir / jr.JOURNAL_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a trading run folder (no {jr.JOURNAL_NAME})")
    cfg_path = run_dir / "config.toml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir}: the run folder has no config.toml (was it started?)")
    cfg = load_config(cfg_path)
    engine = LiveEngine(cfg, list(cfg.symbols))
    risk = risk_of(cfg)
    journal = jr.Journal.open(path, create=False, read_only=True)
    try:
        meta = jr.read_progress(path)
        replay(journal, engine)
        return from_engine(
            engine, meta, journal, run_dir=run_dir, running=holder_pid(run_dir) is not None,
            risk=risk,
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            journal.close()

"""What a backtest walks: its sessions (with warm-up for the quiet-volume window), the
minute grid and each minute's flags, and the kernel's parameters from the config."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from momentumbot.allocation.rotation import SCORERS
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid, TradingCalendar
from momentumbot.data.source import BarSource
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.results import MinutePlan


def kernel_params(cfg: AppConfig, n_symbols: int, *, simulate_fills: bool = True) -> k.KernelParams:
    """Flatten the config into the kernel's parameter tuple."""
    allotment = cfg.portfolio.initial_cash / max(n_symbols, 1)
    return k.KernelParams(
        step=float(cfg.strategy.step),
        buffer=float(cfg.strategy.buffer),
        shadow_notional=float(cfg.strategy.shadow_notional),
        hold_overnight=bool(cfg.strategy.hold_overnight),
        quiet_window=int(cfg.allocation.quiet_window_minutes),
        min_history_bars=int(cfg.allocation.min_history_bars),
        min_quiet_volume=float(cfg.allocation.min_quiet_volume),
        scorer=SCORERS[cfg.allocation.scorer],
        score_shift_epsilon=float(cfg.allocation.score_shift_epsilon),
        top_k=int(cfg.allocation.top_k),
        rebalance_tolerance=float(cfg.allocation.rebalance_tolerance),
        max_commission_bps=float(cfg.execution.max_commission_bps),
        cash_reserve=float(cfg.portfolio.cash_reserve),
        bench_allotment_micro=int(math.floor(allotment * 1e6)),
        simulate_fills=simulate_fills,
        max_position_value=float(cfg.risk.max_position_value),
        max_gross_exposure=float(cfg.risk.max_gross_exposure),
        max_orders_per_minute=int(cfg.risk.max_orders_per_minute),
        max_daily_loss=float(cfg.risk.max_daily_loss),
        settle_t1=cfg.portfolio.settlement == "T+1",
    )


def minute_flags(grid: MinuteGrid, cfg: AppConfig, n_warmup_sessions: int) -> np.ndarray:
    """Flags of every minute of the grid (session bounds, allocator, flatten, windows)."""
    sess = grid.session
    open_ns = grid.open_ns[sess]
    close_ns = grid.close_ns[sess]
    label = grid.label_ns
    decided = label + NS_PER_MINUTE
    flags = np.zeros(grid.n_minutes, dtype=np.int32)
    first = grid.minute == 0
    last = np.zeros(grid.n_minutes, dtype=bool)
    last[:-1] = sess[1:] != sess[:-1]
    if grid.n_minutes:
        last[-1] = True
    flatten_at = close_ns - cfg.session.flatten_minutes * NS_PER_MINUTE  # decision time
    hold = cfg.strategy.hold_overnight
    flatten = (decided == flatten_at) & (not hold)
    alloc = grid.minute % cfg.allocation.rebalance_minutes == 0
    if not hold:
        alloc &= decided <= flatten_at
    no_buys = decided >= close_ns - cfg.session.no_new_entries_minutes * NS_PER_MINUTE
    flags |= np.where(first, k.F_FIRST, 0).astype(np.int32)
    flags |= np.where(last, k.F_LAST, 0).astype(np.int32)
    flags |= np.where(alloc, k.F_ALLOC, 0).astype(np.int32)
    flags |= np.where(flatten, k.F_FLATTEN, 0).astype(np.int32)
    flags |= np.where(no_buys, k.F_NO_BUYS, 0).astype(np.int32)
    flags |= np.where(sess < n_warmup_sessions, k.F_WARMUP, 0).astype(np.int32)
    del open_ns
    return flags


def plan_minutes(
    calendar: TradingCalendar, sessions: pd.DatetimeIndex, cfg: AppConfig
) -> MinutePlan:
    """Warm-up sessions covering the quiet-volume window, then the run's sessions."""
    need = cfg.allocation.quiet_window_minutes
    warm: list[pd.Timestamp] = []
    minutes = 0
    before = calendar.sessions_before(sessions[0], need // 200 + 3)
    warm_grid_all = calendar.grid(before) if len(before) else None
    if warm_grid_all is not None:
        counts = np.bincount(warm_grid_all.session, minlength=len(before))
        for i in range(len(before) - 1, -1, -1):
            if minutes >= need:
                break
            warm.insert(0, before[i])
            minutes += int(counts[i])
    all_sessions = pd.DatetimeIndex(list(warm) + list(sessions))
    grid = calendar.grid(all_sessions)
    flags = minute_flags(grid, cfg, len(warm))
    month = (all_sessions.year * 12 + all_sessions.month).to_numpy().astype(np.int64)
    return MinutePlan(
        grid=grid, flags=flags, month_id=month[grid.session], n_warmup_sessions=len(warm)
    )


def regular_bar_before(
    source: BarSource, cal: TradingCalendar, symbol: str, before_ns: int
) -> bool:
    """Whether the symbol has a regular-session bar before `before_ns` (extended-hours bars
    do not start its quiet-volume history). Reads forward from its first bar a month at a
    time, so it usually touches one small window of the file."""
    lo = source.info(symbol).first_ns
    step = 31 * 24 * 60 * NS_PER_MINUTE
    while lo < before_ns:
        hi = min(lo + step, before_ns)
        ts = source.read_arrays(symbol, lo, hi).ts
        if ts.shape[0] and (cal.session_of(ts) >= 0).any():
            return True
        lo = hi
    return False


def resolve_sessions(
    calendar: TradingCalendar,
    source: BarSource,
    symbols: Sequence[str],
    start: str | None,
    end: str | None,
) -> pd.DatetimeIndex:
    """The run's sessions: [start, end], defaulting to the span of the symbols' data."""
    infos = [source.info(s) for s in symbols]
    first = min(i.first_ns for i in infos)
    last = max(i.last_ns for i in infos)
    tz = EXCHANGE_TZ
    s = (
        pd.Timestamp(start)
        if start
        else pd.Timestamp(first, tz="UTC").tz_convert(tz).normalize().tz_localize(None)
    )
    e = (
        pd.Timestamp(end)
        if end
        else pd.Timestamp(last, tz="UTC").tz_convert(tz).normalize().tz_localize(None)
    )
    calendar.check_range(s, e, "--start/--end" if start or end else "the stored bars")
    sessions = calendar.sessions(s, e)
    if len(sessions) == 0:
        raise DataError(f"no trading sessions between {s.date()} and {e.date()}")
    grid = calendar.grid(sessions)
    lo, hi = int(grid.label_ns[0]), int(grid.label_ns[-1]) + NS_PER_MINUTE
    if not any(i.first_ns < hi and i.last_ns >= lo for i in infos):
        fmt = "%Y-%m-%d"
        span = (
            f"{pd.Timestamp(first, tz='UTC').tz_convert(tz):{fmt}} to "
            f"{pd.Timestamp(last, tz='UTC').tz_convert(tz):{fmt}}"
        )
        raise DataError(
            f"no bars for {', '.join(symbols)} between {sessions[0].date()} and "
            f"{sessions[-1].date()}; the store has {span}: choose --start/--end inside it"
        )
    return sessions

"""The backtest driver: builds the minute grid and its flags from the calendar, streams bars
from a bar source chunk by chunk into the compiled kernel, and collects the run's tables."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import numpy as np
import pandas as pd

from momentumbot.allocation.quiet_volume import quiet_volume_pass_columns
from momentumbot.allocation.rotation import SCORERS
from momentumbot.compiled import in_parts, jit
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid, TradingCalendar
from momentumbot.data.source import BarSource
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.risk_events import RISK_COLUMNS, risk_events
from momentumbot.execution.costs import CostParams, cost_params

_T = TypeVar("_T", k.OrderTable, k.FillTable, k.AllocTable)


@dataclass(frozen=True)
class MinutePlan:
    """The minutes the kernel walks: warm-up then the run, with their flags."""

    grid: MinuteGrid
    flags: np.ndarray  # int32
    month_id: np.ndarray  # int64
    n_warmup_sessions: int


@dataclass
class BacktestResult:
    """Everything a run produced, as arrays and frames ready to write."""

    symbols: list[str]
    plan: MinutePlan
    orders: pd.DataFrame
    fills: pd.DataFrame
    allocations: pd.DataFrame
    equity: pd.DataFrame
    benchmark_equity: pd.DataFrame
    benchmark_fills: pd.DataFrame
    final_positions: dict[str, int]
    last_prices: dict[str, float]
    overnight_carries: int
    initial_cash: float
    bars_used: int
    timings: dict[str, float]
    # what the [risk] limits cut, refused and halted (risk.csv; empty without limits)
    risk_events: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RISK_COLUMNS))


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


def load_columns(
    source: BarSource, symbols: Sequence[str], label_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols x minutes) open, close, volume on the grid; NaN where no bar.
    Bars off the grid (extended hours) are ignored. Each symbol's minutes are contiguous,
    as they come from the store and as the quiet-volume pass walks them."""
    n_m = label_ns.shape[0]
    shape = (len(symbols), n_m)
    o = np.full(shape, np.nan)
    c = np.full(shape, np.nan)
    v = np.full(shape, np.nan)
    if n_m:
        lo = int(label_ns[0])
        hi = int(label_ns[-1]) + NS_PER_MINUTE
        for j, sym in enumerate(symbols):
            bars = source.read_arrays(sym, lo, hi)
            if bars.ts.shape[0] == 0:
                continue
            idx = np.minimum(np.searchsorted(label_ns, bars.ts), n_m - 1)
            on_grid = label_ns[idx] == bars.ts
            if on_grid.all():
                o[j, idx] = bars.open
                c[j, idx] = bars.close
                v[j, idx] = bars.volume
            else:
                rows = idx[on_grid]
                o[j, rows] = bars.open[on_grid]
                c[j, rows] = bars.close[on_grid]
                v[j, rows] = bars.volume[on_grid]
    return o, c, v


@jit(nogil=True)
def _transpose_blocks(b_lo: int, b_hi: int, src: np.ndarray, dst: np.ndarray) -> None:
    """Blocks [b_lo, b_hi) of 256 minutes of (symbols x minutes) src into (minutes x symbols) dst."""
    n_sym, n_min = src.shape
    for b in range(b_lo, b_hi):
        lo = b * 256
        hi = min(lo + 256, n_min)
        for s in range(n_sym):
            for m in range(lo, hi):
                dst[m, s] = src[s, m]


def _transpose(src: np.ndarray) -> np.ndarray:
    """(symbols x minutes) to a C-ordered (minutes x symbols) copy, in cache-sized blocks,
    on every core."""
    n_sym, n_min = src.shape
    dst = np.empty((n_min, n_sym))
    in_parts(_transpose_blocks, (n_min + 255) // 256, src, dst)
    return dst


def load_matrix(
    source: BarSource, symbols: Sequence[str], label_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(minutes x symbols) open, close, volume on the grid, C-ordered as the kernel reads
    them (one minute across symbols at a time); NaN where no bar."""
    o, c, v = load_columns(source, symbols, label_ns)
    return _transpose(o), _transpose(c), _transpose(v)


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


def run_backtest(
    cfg: AppConfig,
    source: BarSource,
    *,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    calendar: TradingCalendar | None = None,
    chunk_sessions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    allocation_sink: Callable[[pd.DataFrame], None] | None = None,
) -> BacktestResult:
    """Run the strategy over the sessions [start, end] on bars from `source`.

    Allocation rows go to `allocation_sink` chunk by chunk when given (so a wide universe
    never holds them all in memory); otherwise they are collected in the result.
    """
    syms = list(symbols if symbols is not None else cfg.symbols)
    if not syms:
        raise ConfigError(
            "symbols: the symbol list is empty; set `symbols` in the config or pass --symbols"
        )
    missing = [s for s in syms if not source.has(s)]
    if missing:
        raise DataError(
            f"no bars in the store for {', '.join(missing)}: import them with `momentumbot data import`"
        )
    cal = calendar or TradingCalendar(cfg.session.calendar)
    sessions = resolve_sessions(cal, source, syms, start, end)
    plan = plan_minutes(cal, sessions, cfg)
    kp = kernel_params(cfg, len(syms))
    cp = cost_params(cfg.execution)
    n = len(syms)
    st = k.new_state(n, kp.quiet_window, cfg.portfolio.initial_cash)
    # symbols with regular-session bars before the warm-up window have full history
    grid = plan.grid
    if grid.n_minutes:
        first_minute = int(grid.label_ns[0])
        for j, sym in enumerate(syms):
            st.qv_started[j] = regular_bar_before(source, cal, sym, first_minute)
    orders = k.new_orders(max(1024, 4 * n))
    fills = k.new_fills(max(1024, 4 * n))
    allocs = k.new_allocs(max(1024, 4 * n))
    out = k.new_minute_out(grid.n_minutes)
    n_sessions = len(grid.sessions)
    if chunk_sessions is None:
        # about 3M cells (a few tens of MB of matrices) per chunk: few Parquet reads,
        # memory flat however many sessions
        chunk_sessions = int(min(max(3_000_000 // (max(n, 1) * 390), 5), 250))
    done_sessions = 0
    bars_used = 0
    t_load = t_kernel = t_qv = 0.0
    sym_arr = np.array(syms, dtype=object)
    alloc_parts: list[pd.DataFrame] = []
    for first in range(0, n_sessions, chunk_sessions):
        stop = min(first + chunk_sessions, n_sessions)
        lo = int(np.searchsorted(grid.session, first, side="left"))
        hi = int(np.searchsorted(grid.session, stop, side="left"))
        labels = grid.label_ns[lo:hi]
        t0 = time.perf_counter()
        o_cols, c_cols, v_cols = load_columns(source, syms, labels)
        t1 = time.perf_counter()
        t_load += t1 - t0
        flags = plan.flags[lo:hi]
        run_rows = (flags & k.F_WARMUP) == 0
        bars_used += int(np.count_nonzero(~np.isnan(c_cols[:, run_rows])))
        is_alloc = ((flags & k.F_ALLOC) != 0) & run_rows
        alloc_row = np.where(is_alloc, np.cumsum(is_alloc) - 1, -1).astype(np.int64)
        n_runs = int(is_alloc.sum())
        qv_at = np.zeros((n_runs, n))
        qv_n = np.zeros((n_runs, n), np.int64)
        t_qv0 = time.perf_counter()
        quiet_volume_pass_columns(
            v_cols, c_cols, alloc_row, st.qv_ring, st.qv_sorted, st.qv_count, st.qv_head,
            st.qv_started, kp.quiet_window, qv_at, qv_n,
        )  # fmt: skip
        t_qv += time.perf_counter() - t_qv0
        o, c, v = _transpose(o_cols), _transpose(c_cols), _transpose(v_cols)
        del o_cols, c_cols, v_cols
        sub_out = k.MinuteOut(*(col[lo:hi] for col in out))
        m = 0
        while m < hi - lo:
            m = k.run_minutes(
                o, c, v, labels, flags, plan.month_id[lo:hi], alloc_row, qv_at, qv_n, m, hi - lo,
                kp, cp, st, orders, fills, allocs, sub_out,
            )  # fmt: skip
            if m < hi - lo:
                orders = _grown(orders, int(st.counters[k.C_ORDERS]), n)
                fills = _grown(fills, int(st.counters[k.C_FILLS]), n)
                allocs = _grown(allocs, int(st.counters[k.C_ALLOCS]), n)
        t_kernel += time.perf_counter() - t1
        # allocation rows are final once written: hand them on and reuse the table
        n_alloc = int(st.counters[k.C_ALLOCS])
        if n_alloc:
            part = alloc_frame(allocs, n_alloc, sym_arr)
            if allocation_sink is not None:
                allocation_sink(part)
            else:
                alloc_parts.append(part)
            st.counters[k.C_ALLOCS] = 0
        done_sessions = stop
        if progress is not None:
            progress(
                max(0, done_sessions - plan.n_warmup_sessions), n_sessions - plan.n_warmup_sessions
            )
    t0 = time.perf_counter()
    result = collect_result(
        cfg, syms, plan, st, orders, fills, allocs, out, cp, bars_used, alloc_parts
    )
    result.timings.update(
        load=t_load, kernel=t_kernel, quiet_volume=t_qv, collect=time.perf_counter() - t0
    )
    return result


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


def _grown(table: _T, used: int, n: int) -> _T:
    cap = table[0].shape[0]
    if cap - used >= n + 1:
        return table
    return k.grow(table, max(2 * cap, used + 4 * (n + 1)))


def alloc_frame(allocs: k.AllocTable, n: int, sym_arr: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "time": _iso(allocs.time_ns[:n]),
            "symbol": _names(allocs.symbol[:n], list(sym_arr)),
            "score": allocs.score[:n],
            "budget": allocs.budget[:n],
            "target_shares": allocs.target[:n],
        }
    )


def _iso(ns: np.ndarray) -> pd.Categorical[str]:
    """UTC ns to ISO 8601 strings with an explicit +00:00 offset, each distinct time
    formatted once (a categorical: allocation rows repeat one time per symbol)."""
    uniq, codes = np.unique(ns, return_inverse=True)
    text = np.char.add(np.datetime_as_string(uniq.astype("datetime64[ns]"), unit="s"), "+00:00")
    dtype = pd.CategoricalDtype(text.astype(str).tolist())
    return cast(
        "pd.Categorical[str]", pd.Categorical.from_codes(codes.astype(np.int32), dtype=dtype)
    )


def _names(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical[str]:
    """Small integer codes to their names, as a categorical (cheap to build and to write)."""
    dtype = pd.CategoricalDtype(list(names))
    return cast(
        "pd.Categorical[str]", pd.Categorical.from_codes(codes.astype(np.int32), dtype=dtype)
    )


def collect_result(
    cfg: AppConfig,
    syms: list[str],
    plan: MinutePlan,
    st: k.State,
    orders: k.OrderTable,
    fills: k.FillTable,
    allocs: k.AllocTable,
    out: k.MinuteOut,
    cp: CostParams,
    bars_used: int,
    alloc_parts: list[pd.DataFrame],
) -> BacktestResult:
    sym_arr = np.array(syms, dtype=object)
    sides = ("SELL", "?", "BUY")  # code side + 1
    n_o = int(st.counters[k.C_ORDERS])
    orders_df = pd.DataFrame(
        {
            "order_id": np.arange(n_o, dtype=np.int64),
            "decided_at": _iso(orders.decided_ns[:n_o]),
            "symbol": _names(orders.symbol[:n_o], syms),
            "side": _names(orders.side[:n_o].astype(np.int64) + 1, sides),
            "quantity": orders.quantity[:n_o],
            "reason": _names(orders.reason[:n_o], k.REASONS),
            "status": _names(orders.status[:n_o], k.STATUSES),
            "filled_quantity": orders.filled[:n_o],
        }
    )
    n_f = int(st.counters[k.C_FILLS])
    fills_df = pd.DataFrame(
        {
            "fill_id": np.arange(n_f, dtype=np.int64),
            "order_id": fills.order_id[:n_f],
            "time": _iso(fills.time_ns[:n_f]),
            "symbol": _names(fills.symbol[:n_f], syms),
            "side": _names(fills.side[:n_f].astype(np.int64) + 1, sides),
            "quantity": fills.quantity[:n_f],
            "price": fills.price[:n_f],
            "commission": fills.commission[:n_f] / 1e6,
            "slippage": fills.slippage[:n_f],
        }
    )
    run = plan.flags & k.F_WARMUP == 0
    close_ns = plan.grid.label_ns[run] + NS_PER_MINUTE
    cash = out.cash[run] / 1e6
    pv = out.positions_value[run]
    equity_df = pd.DataFrame(
        {"time": _iso(close_ns), "cash": cash, "positions_value": pv, "equity": cash + pv}
    )
    bench_cash = int(st.counters[k.C_BENCH_CASH]) / 1e6  # spent at the first bars, then constant
    bench_eq = out.bench_equity[run]
    bench_df = pd.DataFrame(
        {
            "time": equity_df["time"],
            "cash": bench_cash,
            "positions_value": bench_eq - bench_cash,
            "equity": bench_eq,
        }
    )
    bought = st.bench_shares > 0
    bench_fills = pd.DataFrame(
        {
            "fill_id": np.arange(int(bought.sum()), dtype=np.int64),
            "order_id": np.arange(int(bought.sum()), dtype=np.int64),
            "time": _iso(st.bench_time[bought]),
            "symbol": sym_arr[bought],
            "side": "BUY",
            "quantity": st.bench_shares[bought],
            "price": st.bench_price[bought],
            "commission": st.bench_commission[bought] / 1e6,
            "slippage": st.bench_shares[bought]
            * (
                cp.slippage_per_share
                + cp.slippage_bps
                * 1e-4
                * (st.bench_price[bought] - cp.slippage_per_share)
                / (1 + cp.slippage_bps * 1e-4)
            ),
        }
    )
    return BacktestResult(
        symbols=syms,
        plan=plan,
        orders=orders_df,
        fills=fills_df,
        allocations=pd.concat(alloc_parts, ignore_index=True)
        if alloc_parts
        else alloc_frame(allocs, 0, sym_arr),
        equity=equity_df,
        benchmark_equity=bench_df,
        benchmark_fills=bench_fills,
        final_positions={s: int(p) for s, p in zip(syms, st.position, strict=True)},
        last_prices={s: float(p) for s, p in zip(syms, st.last_close, strict=True)},
        overnight_carries=int(st.counters[k.C_CARRIES]),
        initial_cash=float(cfg.portfolio.initial_cash),
        bars_used=bars_used,
        timings={},
        risk_events=risk_events(syms, plan.grid.session, plan.grid.label_ns, orders, n_o, out),
    )

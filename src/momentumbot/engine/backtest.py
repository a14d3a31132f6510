"""The backtest driver: builds the minute grid and its flags from the calendar, streams bars
from a bar source chunk by chunk into the compiled kernel (each stored row group read once;
the next chunk read, its quiet volume walked and transposed on a worker thread while the
minute loop runs the current one), and collects the run's tables (`engine.results`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from momentumbot.allocation.quiet_volume import quiet_volume_pass_columns
from momentumbot.allocation.rotation import SCORERS
from momentumbot.compiled import in_parts, jit
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid, TradingCalendar
from momentumbot.data.forward import ForwardReader
from momentumbot.data.source import BarSource
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.results import BacktestResult as BacktestResult
from momentumbot.engine.results import MinutePlan as MinutePlan
from momentumbot.engine.results import alloc_frame as alloc_frame
from momentumbot.engine.results import collect_result as collect_result
from momentumbot.execution.costs import CostParams, cost_params

_T = TypeVar("_T", k.OrderTable, k.FillTable, k.AllocTable)


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


def scatter_columns(
    reader: ForwardReader, n_symbols: int, label_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols x minutes) open, close, volume on the grid from the reader's next bars (up
    to the last label); NaN where no bar. Bars off the grid (extended hours) are ignored.
    Each symbol's minutes are contiguous, as the quiet-volume pass walks them."""
    n_m = label_ns.shape[0]
    shape = (n_symbols, n_m)
    o = np.full(shape, np.nan)
    c = np.full(shape, np.nan)
    v = np.full(shape, np.nan)
    if n_m:
        hi = int(label_ns[-1]) + NS_PER_MINUTE
        for j in range(n_symbols):
            ts, op, cl, vo = reader.take(j, hi)
            if ts.shape[0] == 0:
                continue
            idx = np.minimum(np.searchsorted(label_ns, ts), n_m - 1)
            on_grid = label_ns[idx] == ts
            if on_grid.all():
                o[j, idx] = op
                c[j, idx] = cl
                v[j, idx] = vo
            else:
                rows = idx[on_grid]
                o[j, rows] = op[on_grid]
                c[j, rows] = cl[on_grid]
                v[j, rows] = vo[on_grid]
    return o, c, v


def load_columns(
    source: BarSource, symbols: Sequence[str], label_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols x minutes) open, close, volume on the grid; NaN where no bar."""
    start = int(label_ns[0]) if label_ns.shape[0] else 0
    return scatter_columns(ForwardReader(source, symbols, start), len(symbols), label_ns)


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


def _transpose(src: np.ndarray, *, all_cores: bool = True) -> np.ndarray:
    """(symbols x minutes) to a C-ordered (minutes x symbols) copy, in cache-sized blocks,
    on every core (or in this thread only)."""
    n_sym, n_min = src.shape
    dst = np.empty((n_min, n_sym))
    blocks = (n_min + 255) // 256
    if all_cores:
        in_parts(_transpose_blocks, blocks, src, dst)
    else:
        _transpose_blocks(0, blocks, src, dst)
    return dst


def load_matrix(
    source: BarSource, symbols: Sequence[str], label_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(minutes x symbols) open, close, volume on the grid, C-ordered as the kernel reads
    them (one minute across symbols at a time); NaN where no bar."""
    o, c, v = load_columns(source, symbols, label_ns)
    return _transpose(o), _transpose(c), _transpose(v)


@dataclass
class _Chunk:
    """One chunk of minutes [lo, hi) ready for the minute loop, and what preparing it cost."""

    lo: int
    hi: int
    stop_session: int
    o: np.ndarray  # (minutes x symbols), C-ordered
    c: np.ndarray
    v: np.ndarray
    alloc_row: np.ndarray
    qv_at: np.ndarray
    qv_n: np.ndarray
    bars_used: int
    load_s: float
    qv_s: float
    prep_s: float


def _prepare_chunk(
    reader: ForwardReader,
    plan: MinutePlan,
    first: int,
    stop: int,
    st: k.State,
    quiet_window: int,
    all_cores: bool,
) -> _Chunk:
    """Read a chunk's bars (sessions [first, stop)), walk its quiet-volume windows (the
    state's windows carry from the previous chunk) and transpose it for the minute loop.
    Touches no state the minute loop uses, so it runs beside the previous chunk's loop."""
    grid = plan.grid
    lo = int(np.searchsorted(grid.session, first, side="left"))
    hi = int(np.searchsorted(grid.session, stop, side="left"))
    labels = grid.label_ns[lo:hi]
    n = st.position.shape[0]
    t0 = time.perf_counter()
    o_cols, c_cols, v_cols = scatter_columns(reader, n, labels)
    t1 = time.perf_counter()
    flags = plan.flags[lo:hi]
    run_rows = (flags & k.F_WARMUP) == 0
    first_run = int(np.argmax(run_rows)) if run_rows.any() else hi - lo  # warm-up is a prefix
    bars_used = int(np.count_nonzero(~np.isnan(c_cols[:, first_run:])))
    is_alloc = ((flags & k.F_ALLOC) != 0) & run_rows
    alloc_row = np.where(is_alloc, np.cumsum(is_alloc) - 1, -1).astype(np.int64)
    n_runs = int(is_alloc.sum())
    qv_at = np.zeros((n_runs, n))
    qv_n = np.zeros((n_runs, n), np.int64)
    t2 = time.perf_counter()
    quiet_volume_pass_columns(
        v_cols, c_cols, alloc_row, st.qv_ring, st.qv_sorted, st.qv_count, st.qv_head,
        st.qv_started, quiet_window, qv_at, qv_n, all_cores=all_cores,
    )  # fmt: skip
    t3 = time.perf_counter()
    o = _transpose(o_cols, all_cores=all_cores)
    del o_cols
    c = _transpose(c_cols, all_cores=all_cores)
    del c_cols
    v = _transpose(v_cols, all_cores=all_cores)
    del v_cols
    return _Chunk(
        lo, hi, stop, o, c, v, alloc_row, qv_at, qv_n, bars_used,
        t1 - t0, t3 - t2, time.perf_counter() - t0,
    )  # fmt: skip


def default_chunk_sessions(n_symbols: int, n_sessions: int) -> int:
    """Sessions per chunk: about a million cells (tens of MB of matrices, two chunks alive
    at once), and at least 8 chunks so that reading overlaps the minute loop."""
    by_memory = 1_000_000 // (max(n_symbols, 1) * 390)
    return int(max(2, min(by_memory, -(-n_sessions // 8), 250)))


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
        chunk_sessions = default_chunk_sessions(n, n_sessions)
    bounds = [
        (f, min(f + chunk_sessions, n_sessions)) for f in range(0, n_sessions, chunk_sessions)
    ]
    reader = ForwardReader(source, syms, int(grid.label_ns[0]) if grid.n_minutes else 0)
    bars_used = 0
    t_load = t_qv = exposed_load = 0.0
    sym_arr = np.array(syms, dtype=object)
    alloc_parts: list[pd.DataFrame] = []
    t_start = time.perf_counter()
    # the next chunk is read and prepared on a worker thread while the minute loop (which
    # releases the GIL) runs the current one; the first has nothing to overlap
    with ThreadPoolExecutor(max_workers=1) as worker:
        chunk = _prepare_chunk(reader, plan, *bounds[0], st, kp.quiet_window, True)
        exposed_load += chunk.load_s
        for i in range(len(bounds)):
            ahead = (
                worker.submit(
                    _prepare_chunk, reader, plan, *bounds[i + 1], st, kp.quiet_window, False
                )
                if i + 1 < len(bounds)
                else None
            )
            t_load += chunk.load_s
            t_qv += chunk.qv_s
            bars_used += chunk.bars_used
            orders, fills, allocs = _run_chunk(
                chunk, plan, kp, cp, st, orders, fills, allocs, out, n
            )
            # allocation rows are final once written: hand them on and reuse the table
            n_alloc = int(st.counters[k.C_ALLOCS])
            if n_alloc:
                part = alloc_frame(allocs, n_alloc, sym_arr)
                if allocation_sink is not None:
                    allocation_sink(part)
                else:
                    alloc_parts.append(part)
                st.counters[k.C_ALLOCS] = 0
            if progress is not None:
                progress(
                    max(0, chunk.stop_session - plan.n_warmup_sessions),
                    n_sessions - plan.n_warmup_sessions,
                )
            if ahead is not None:
                t_wait = time.perf_counter()
                chunk = ahead.result()
                waited = time.perf_counter() - t_wait
                exposed_load += waited * chunk.load_s / max(chunk.prep_s, 1e-9)
    t_engine = time.perf_counter() - t_start
    t0 = time.perf_counter()
    result = collect_result(
        cfg, syms, plan, st, orders, fills, allocs, out, cp, bars_used, alloc_parts
    )
    # kernel: the engine phase's wall time less the reading the minute loop waited for
    result.timings.update(
        load=t_load,
        kernel=t_engine - exposed_load,
        quiet_volume=t_qv,
        collect=time.perf_counter() - t0,
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


def _run_chunk(
    chunk: _Chunk,
    plan: MinutePlan,
    kp: k.KernelParams,
    cp: CostParams,
    st: k.State,
    orders: k.OrderTable,
    fills: k.FillTable,
    allocs: k.AllocTable,
    out: k.MinuteOut,
    n: int,
) -> tuple[k.OrderTable, k.FillTable, k.AllocTable]:
    """The minute loop over one chunk, growing the tables when it stops for room."""
    lo, hi = chunk.lo, chunk.hi
    sub_out = k.MinuteOut(*(col[lo:hi] for col in out))
    labels = plan.grid.label_ns[lo:hi]
    flags = plan.flags[lo:hi]
    month = plan.month_id[lo:hi]
    m = 0
    while m < hi - lo:
        m = k.run_minutes(
            chunk.o, chunk.c, chunk.v, labels, flags, month, chunk.alloc_row, chunk.qv_at,
            chunk.qv_n, m, hi - lo, kp, cp, st, orders, fills, allocs, sub_out,
        )  # fmt: skip
        if m < hi - lo:
            orders = _grown(orders, int(st.counters[k.C_ORDERS]), n)
            fills = _grown(fills, int(st.counters[k.C_FILLS]), n)
            allocs = _grown(allocs, int(st.counters[k.C_ALLOCS]), n)
    return orders, fills, allocs


def _grown(table: _T, used: int, n: int) -> _T:
    cap = table[0].shape[0]
    if cap - used >= n + 1:
        return table
    return k.grow(table, max(2 * cap, used + 4 * (n + 1)))

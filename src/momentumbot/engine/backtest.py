"""The backtest driver: builds the minute grid and its flags from the calendar, streams bars
from a bar source chunk by chunk into the compiled kernel (each stored row group read once;
the next chunk read, its quiet volume walked and transposed on a worker thread while the
minute loop runs the current one), and collects the run's tables (`engine.results`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentumbot.allocation.quiet_volume import walk_symbols
from momentumbot.compiled import in_parts, jit
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.forward import ForwardReader
from momentumbot.data.source import BarSource
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.pipeline import (
    AllocationRows,
    ChunkBuffers,
    Tables,
    gc_frozen,
    grown,
    trim_heap,
)
from momentumbot.engine.plan import kernel_params as kernel_params
from momentumbot.engine.plan import minute_flags as minute_flags
from momentumbot.engine.plan import plan_minutes as plan_minutes
from momentumbot.engine.plan import regular_bar_before as regular_bar_before
from momentumbot.engine.plan import resolve_sessions as resolve_sessions
from momentumbot.engine.results import BacktestResult as BacktestResult
from momentumbot.engine.results import MinutePlan as MinutePlan
from momentumbot.engine.results import MinuteRows as MinuteRows
from momentumbot.engine.results import alloc_frame as alloc_frame
from momentumbot.engine.results import collect_result as collect_result
from momentumbot.engine.results import minute_rows
from momentumbot.engine.shared_work import WorkBoard
from momentumbot.execution.costs import CostParams, cost_params


@jit(nogil=True)
def _scatter_row(
    j: int,
    ts: np.ndarray,
    op: np.ndarray,
    cl: np.ndarray,
    vo: np.ndarray,
    label_ns: np.ndarray,
    o: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
) -> None:
    """Row j of o, c, v: NaN, then each bar at its minute of label_ns (both ascending,
    walked together); bars at no label are skipped."""
    n_m = label_ns.shape[0]
    for m in range(n_m):
        o[j, m] = np.nan
        c[j, m] = np.nan
        v[j, m] = np.nan
    m = 0
    for b in range(ts.shape[0]):
        t = ts[b]
        while m < n_m and label_ns[m] < t:
            m += 1
        if m == n_m:
            break
        if label_ns[m] == t:
            o[j, m] = op[b]
            c[j, m] = cl[b]
            v[j, m] = vo[b]


def scatter_columns(
    reader: ForwardReader,
    n_symbols: int,
    label_ns: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(symbols x minutes) open, close, volume on the grid from the reader's next bars (up
    to the last label); NaN where no bar. Bars off the grid (extended hours) are ignored.
    Each symbol's minutes are contiguous, as the quiet-volume pass walks them. Written into
    `out` when given (every cell is written)."""
    n_m = label_ns.shape[0]
    shape = (n_symbols, n_m)
    o, c, v = out if out is not None else (np.empty(shape), np.empty(shape), np.empty(shape))
    hi = int(label_ns[-1]) + NS_PER_MINUTE if n_m else 0
    for j in range(n_symbols):
        ts, op, cl, vo = reader.take(j, hi) if n_m else _NO_BARS
        _scatter_row(j, ts, op, cl, vo, label_ns, o, c, v)
    return o, c, v


_NO_BARS = (np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0))


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


def _transpose(src: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """(symbols x minutes) to a C-ordered (minutes x symbols) copy (into dst when given), in
    cache-sized blocks, on every core."""
    n_sym, n_min = src.shape
    dst = np.empty((n_min, n_sym)) if dst is None else dst
    in_parts(_transpose_blocks, (n_min + 255) // 256, src, dst)
    return dst


def _transpose_parts(lo: int, hi: int, pairs: list[tuple[np.ndarray, np.ndarray]], nb: int) -> None:
    """Blocks [lo, hi) of the transposes of several matrices, nb blocks of 256 minutes each
    (block i of matrix j is block j * nb + i)."""
    for j, (src, dst) in enumerate(pairs):
        a, b = max(lo, j * nb), min(hi, (j + 1) * nb)
        if a < b:
            _transpose_blocks(a - j * nb, b - j * nb, src, dst)


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
    buffers: ChunkBuffers,
    slot: int,
    board: WorkBoard,
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
    o_cols, c_cols, v_cols = scatter_columns(reader, n, labels, buffers.columns(hi - lo))
    t1 = time.perf_counter()
    flags = plan.flags[lo:hi]
    run_rows = (flags & k.F_WARMUP) == 0
    first_run = int(np.argmax(run_rows)) if run_rows.any() else hi - lo  # warm-up is a prefix
    bars_used = int(np.count_nonzero(~np.isnan(c_cols[:, first_run:])))
    is_alloc = ((flags & k.F_ALLOC) != 0) & run_rows
    alloc_row = np.where(is_alloc, np.cumsum(is_alloc) - 1, -1).astype(np.int64)
    qv_at, qv_n = buffers.quiet_volumes(slot, int(is_alloc.sum()))
    t2 = time.perf_counter()
    # both posted on the board: the minute loop's thread joins in when done with its chunk
    board.post(
        walk_symbols, n, (v_cols, c_cols, alloc_row, st.qv_ring, st.qv_sorted, st.qv_count,
                          st.qv_head, st.qv_started, quiet_window, qv_at, qv_n), max(1, n // 16),
    ).run()  # fmt: skip
    t3 = time.perf_counter()
    o, c, v = buffers.matrices(slot, hi - lo)
    nb = (hi - lo + 255) // 256
    pairs = [(o_cols, o), (c_cols, c), (v_cols, v)]
    board.post(_transpose_parts, 3 * nb, (pairs, nb), 8).run()
    return _Chunk(
        lo, hi, stop, o, c, v, alloc_row, qv_at, qv_n, bars_used,
        t1 - t0, t3 - t2, time.perf_counter() - t0,
    )  # fmt: skip


def default_chunk_sessions(n_symbols: int, n_sessions: int) -> int:
    """Sessions per chunk: about a million cells (nine matrices of 8 MB: one set read into,
    two transposed, as two chunks are alive at once; and the chunk's allocation rows in
    flight), and at least 8 chunks so that reading overlaps the minute loop."""
    by_memory = 1_000_000 // (max(n_symbols, 1) * 390)
    return int(max(2, min(by_memory, -(-n_sessions // 8), 250)))


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
    minute_sink: Callable[[MinuteRows], None] | None = None,
) -> BacktestResult:
    """Run the strategy over the sessions [start, end] on bars from `source`.

    Allocation rows go to `allocation_sink` chunk by chunk when given (so a wide universe
    never holds them all in memory); otherwise they are collected in the result.
    `minute_sink`, when given, is handed each chunk's equity and benchmark rows as soon
    as the chunk is run (on the engine's thread: it must return at once); the result
    holds them all as well.
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
    n_sessions = len(grid.sessions)
    per = chunk_sessions or default_chunk_sessions(n, n_sessions)
    bounds = [(f, min(f + per, n_sessions)) for f in range(0, n_sessions, per)]
    tables = Tables(
        k.new_orders(max(1024, 4 * n)),
        k.new_fills(max(1024, 4 * n)),
        k.new_allocs(max(1024, 4 * n)),
        k.new_minute_out(grid.n_minutes),
    )
    t_start = time.perf_counter()
    with gc_frozen():
        bars_used, tm, parts = _run_chunks(
            source, syms, plan, bounds, kp, cp, st, tables, allocation_sink, progress, minute_sink
        )
    t_engine = time.perf_counter() - t_start
    # the allocation table's rows were all handed on chunk by chunk (none are left in it)
    tables.allocs = k.AllocTable(*(col[:0] for col in tables.allocs))
    trim_heap()  # the chunk buffers', the reader's and the allocation rows' pages
    t0 = time.perf_counter()
    result = collect_result(
        cfg, syms, plan, st, tables.orders, tables.fills, tables.allocs, tables.out, cp,
        bars_used, parts,
    )  # fmt: skip
    # kernel: the engine phase's wall time less the time the minute loop's thread sat idle
    # while bars were read (at most each chunk's reading)
    result.timings.update(
        load=tm["load"],
        kernel=t_engine - tm["exposed"],
        quiet_volume=tm["quiet_volume"],
        minute_loop=tm["minute_loop"],
        waited=tm["waited"],
        helped=tm["helped"],
        engine_wall=t_engine,
        collect=time.perf_counter() - t0,
    )
    return result


def _run_chunks(
    source: BarSource,
    syms: list[str],
    plan: MinutePlan,
    bounds: list[tuple[int, int]],
    kp: k.KernelParams,
    cp: CostParams,
    st: k.State,
    tables: Tables,
    allocation_sink: Callable[[pd.DataFrame], None] | None,
    progress: Callable[[int, int], None] | None,
    minute_sink: Callable[[MinuteRows], None] | None,
) -> tuple[int, dict[str, float], list[pd.DataFrame]]:
    """The engine phase: every chunk read, walked and run; returns the bars used, the
    phase's timings and the allocation rows kept (none when a sink took them). The reader
    and the chunk buffers are its own, so they are freed before the tables are collected."""
    grid = plan.grid
    n = len(syms)
    n_sessions = len(grid.sessions)
    reader = ForwardReader(source, syms, int(grid.label_ns[0]) if grid.n_minutes else 0)
    edges = np.searchsorted(grid.session, [b[0] for b in bounds] + [n_sessions], side="left")
    alloc_runs = np.concatenate(
        [[0], np.cumsum(((plan.flags & k.F_ALLOC) != 0) & ((plan.flags & k.F_WARMUP) == 0))]
    )
    buffers = ChunkBuffers(
        n,
        int(np.diff(edges).max()) if len(bounds) else 0,
        int(np.diff(alloc_runs[edges]).max()) if len(bounds) else 0,
    )
    rows = AllocationRows(np.array(syms, dtype=object), allocation_sink)
    tm = dict.fromkeys(("load", "quiet_volume", "minute_loop", "waited", "helped", "exposed"), 0.0)
    bars_used = 0
    board = WorkBoard()

    def wait_for(future: Future[_Chunk]) -> _Chunk:
        """The next chunk, this thread taking part in its quiet-volume walk and transposes
        meanwhile. The seconds it sat idle, at most the worker's reading of that chunk, are
        the exposed load (idle also covers the worker's own steps between reading and
        posting, and the last blocks others took: those stay in the engine's figure)."""
        t_wait = time.perf_counter()
        idle, helping = board.help_until(future)
        tm["waited"] += time.perf_counter() - t_wait
        tm["helped"] += helping
        chunk = future.result()
        tm["exposed"] += min(idle, chunk.load_s)
        return chunk

    # the next chunk is read, its quiet volume walked and transposed on a worker thread
    # while the minute loop (which releases the GIL) runs the current one, and this thread
    # joins the walk and the transposes once its minutes are done (`shared_work`); allocation
    # rows are made into tables on another thread; the first chunk has nothing to overlap,
    # but it is read on the worker too: Arrow's allocator keeps a thread's pages for that
    # thread, so rows decoded here and freed there would stay held until the run ends
    with ThreadPoolExecutor(max_workers=1) as worker, rows:
        chunk = wait_for(
            worker.submit(
                _prepare_chunk, reader, plan, *bounds[0], st, kp.quiet_window, buffers, 0, board
            )
        )
        for i in range(len(bounds)):
            ahead = None
            if i + 1 < len(bounds):
                ahead = worker.submit(
                    _prepare_chunk, reader, plan, *bounds[i + 1], st, kp.quiet_window,
                    buffers, i + 1, board,
                )  # fmt: skip
            tm["load"] += chunk.load_s
            tm["quiet_volume"] += chunk.qv_s
            bars_used += chunk.bars_used
            t_run = time.perf_counter()
            _run_chunk(chunk, plan, kp, cp, st, tables, n)
            tm["minute_loop"] += time.perf_counter() - t_run
            rows.hand_on(tables.allocs, st)
            if minute_sink is not None:
                last = i + 1 == len(bounds)
                minute_sink(minute_rows(plan, tables.out, st, chunk.lo, chunk.hi, last=last))
            if progress is not None:
                progress(
                    max(0, chunk.stop_session - plan.n_warmup_sessions),
                    n_sessions - plan.n_warmup_sessions,
                )
            if ahead is not None:
                chunk = wait_for(ahead)
    reader.close()
    return bars_used, tm, rows.parts


def _run_chunk(
    chunk: _Chunk,
    plan: MinutePlan,
    kp: k.KernelParams,
    cp: CostParams,
    st: k.State,
    tables: Tables,
    n: int,
) -> None:
    """The minute loop over one chunk, growing the tables when it stops for room."""
    lo, hi = chunk.lo, chunk.hi
    sub_out = k.MinuteOut(*(col[lo:hi] for col in tables.out))
    labels = plan.grid.label_ns[lo:hi]
    flags = plan.flags[lo:hi]
    month = plan.month_id[lo:hi]
    m = 0
    while m < hi - lo:
        m = k.run_minutes(
            chunk.o, chunk.c, chunk.v, labels, flags, month, chunk.alloc_row, chunk.qv_at,
            chunk.qv_n, m, hi - lo, kp, cp, st, tables.orders, tables.fills, tables.allocs,
            sub_out,
        )  # fmt: skip
        if m < hi - lo:
            tables.orders = grown(tables, "orders", int(st.counters[k.C_ORDERS]), n)
            tables.fills = grown(tables, "fills", int(st.counters[k.C_FILLS]), n)
            tables.allocs = grown(tables, "allocs", int(st.counters[k.C_ALLOCS]), n)

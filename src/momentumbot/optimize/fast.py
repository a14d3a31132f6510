"""The sweep's fast path: the bars loaded once, then backtests that reuse everything that
does not depend on the swept parameters.

`run_backtest` reads Parquet, plans the minutes and walks the quiet-volume windows on
every call. Across a sweep those depend only on the bars, the sessions and a few session
parameters, so `SweepData` keeps them: the (minutes x symbols) matrices of the whole span,
loaded once; per window and plan parameters the minute plan; per window and quiet window
the quiet-volume figures at every minute, walked once for every parameter set (they depend
on volumes and `quiet_window_minutes`, never on trading; each allocator-minute pattern
takes its rows). What is left per run is exactly what `run_backtest` does with them: the
compiled minute loop `kernel.run_minutes` and the same `collect_result` into tables. The
loop runs the whole span as one chunk (its state carries across chunks, so chunking never
changes a result). tests/optimize/test_fast.py proves orders, fills, equity and every
figure equal `run_backtest`'s, chunked or not, for parameters of every kind.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.allocation.quiet_volume import quiet_volume_pass_columns
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.source import BarSource
from momentumbot.engine import kernel as k
from momentumbot.engine.backtest import (
    BacktestResult,
    MinutePlan,
    alloc_frame,
    collect_result,
    kernel_params,
    load_columns,
    plan_minutes,
    regular_bar_before,
    resolve_sessions,
)
from momentumbot.execution.costs import cost_params
from momentumbot.reporting.metrics import compute_figures, daily_returns

_CACHE_ENTRIES = 64
# the quiet-volume figures at every minute are large (minutes x symbols): keep a few windows
_CACHE_LIMITS = {"quiet_volume_all": 4}


@dataclass(frozen=True)
class Window:
    """The sessions of one backtest: first and last session, YYYY-MM-DD, both included."""

    start: str
    end: str


@dataclass(frozen=True)
class RunFigures:
    """What a sweep keeps of one run: every figure, the daily returns, the time it took."""

    figures: dict[str, Any]
    daily: np.ndarray
    seconds: float


@dataclass
class _Matrices:
    o: np.ndarray  # (minutes x symbols), C-ordered: what the minute loop reads
    c: np.ndarray
    v: np.ndarray
    c_cols: np.ndarray  # (symbols x minutes): what the quiet-volume pass walks
    v_cols: np.ndarray
    labels: np.ndarray
    bars_used: int


@dataclass
class SweepData:
    """The bars of every window of a sweep (warm-up included) as (minutes x symbols)
    matrices, plus caches filled as runs need them. Pickles without its caches, so it
    ships to a worker process once and each worker fills its own."""

    symbols: list[str]
    calendar_name: str
    label_ns: np.ndarray  # every regular-session minute of the span
    open: np.ndarray  # (symbols x minutes) as the store gives them, NaN where no bar
    close: np.ndarray
    volume: np.ndarray
    started: dict[int, np.ndarray]  # plan's first minute -> qv_started per symbol
    _cache: dict[str, OrderedDict[Any, Any]] = field(default_factory=dict, repr=False)
    _calendar: TradingCalendar | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        source: BarSource,
        symbols: Sequence[str],
        windows: Sequence[Window],
        quiet_windows: Sequence[int],
        calendar_name: str = "XNYS",
    ) -> SweepData:
        """Read the bars the windows need (each with its warm-up for every quiet window
        the sweep may use) in one pass per symbol."""
        cal = TradingCalendar(calendar_name)
        syms = list(symbols)
        firsts: set[int] = set()
        first_session: pd.Timestamp | None = None
        last_session: pd.Timestamp | None = None
        for w in windows:
            sessions = resolve_sessions(cal, source, syms, w.start, w.end)
            for qw in sorted(set(quiet_windows)):
                plan = plan_minutes(cal, sessions, _plan_config(calendar_name, qw))
                firsts.add(int(plan.grid.label_ns[0]))
                s0 = plan.grid.sessions[0]
                first_session = s0 if first_session is None else min(first_session, s0)
            last_session = sessions[-1] if last_session is None else max(last_session, sessions[-1])
        assert first_session is not None and last_session is not None
        grid = cal.grid(cal.sessions(first_session, last_session))
        # symbol-major, as read; transposed per window with numpy (not the engine's
        # parallel transpose: a parent that has not started numba's threads can fork)
        o, c, v = load_columns(source, syms, grid.label_ns)
        started = {
            f: np.array([regular_bar_before(source, cal, s, f) for s in syms], dtype=np.bool_)
            for f in sorted(firsts)
        }
        return cls(syms, calendar_name, grid.label_ns, o, c, v, started, _calendar=cal)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        state["_calendar"] = None
        return state

    @property
    def calendar(self) -> TradingCalendar:
        if self._calendar is None:
            self._calendar = TradingCalendar(self.calendar_name)
        return self._calendar

    # ------------------------------------------------------------------- caches

    def _cached(self, kind: str, key: Any) -> Any:
        table = self._cache.setdefault(kind, OrderedDict())
        if key in table:
            table.move_to_end(key)
            return table[key]
        return None

    def _store(self, kind: str, key: Any, value: Any) -> Any:
        table = self._cache.setdefault(kind, OrderedDict())
        table[key] = value
        while len(table) > _CACHE_LIMITS.get(kind, _CACHE_ENTRIES):
            table.popitem(last=False)
        return value

    def plan(self, cfg: AppConfig, window: Window) -> MinutePlan:
        """The minute plan run_backtest would build (it depends on few parameters)."""
        a, s = cfg.allocation, cfg.session
        key = (
            window,
            a.quiet_window_minutes,
            a.rebalance_minutes,
            s.flatten_minutes,
            s.no_new_entries_minutes,
            cfg.strategy.hold_overnight,
        )
        hit = self._cached("plan", key)
        if hit is not None:
            return hit
        sessions = self._sessions(window)
        return self._store("plan", key, plan_minutes(self.calendar, sessions, cfg))

    def _sessions(self, window: Window) -> pd.DatetimeIndex:
        hit = self._cached("sessions", window)
        if hit is None:
            hit = self._store("sessions", window, self.calendar.sessions(window.start, window.end))
        return hit

    def _matrices(self, plan: MinutePlan) -> _Matrices:
        labels = plan.grid.label_ns
        key = (int(labels[0]), int(labels.shape[0]))
        hit = self._cached("matrices", key)
        if hit is not None:
            return hit
        lo = int(np.searchsorted(self.label_ns, labels[0]))
        hi = lo + labels.shape[0]
        if hi > self.label_ns.shape[0] or not np.array_equal(self.label_ns[lo:hi], labels):
            raise ValueError("the sweep's data does not cover this window's minutes")
        # the layouts run_backtest hands the compiled code (same values, same signatures)
        c_cols = np.ascontiguousarray(self.close[:, lo:hi])
        v_cols = np.ascontiguousarray(self.volume[:, lo:hi])
        mats = _Matrices(
            np.ascontiguousarray(self.open[:, lo:hi].T),
            np.ascontiguousarray(c_cols.T),
            np.ascontiguousarray(v_cols.T),
            c_cols,
            v_cols,
            labels,
            int(np.count_nonzero(~np.isnan(c_cols[:, (plan.flags & k.F_WARMUP) == 0]))),
        )
        return self._store("matrices", key, mats)

    def _quiet_volume(
        self, plan: MinutePlan, mats: _Matrices, quiet_window: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """alloc_row, qv_at, qv_n exactly as run_backtest computes them (one chunk): the
        rows of this plan's allocator minutes, taken from the figures at every run minute."""
        run_rows = (plan.flags & k.F_WARMUP) == 0
        is_alloc = ((plan.flags & k.F_ALLOC) != 0) & run_rows
        digest = hashlib.blake2b(np.packbits(is_alloc).tobytes(), digest_size=16).hexdigest()
        first = int(plan.grid.label_ns[0])
        key = (first, int(is_alloc.shape[0]), quiet_window, digest)
        hit = self._cached("quiet_volume", key)
        if hit is not None:
            return hit
        qv_all, n_all = self._quiet_volume_all(plan, mats, quiet_window)
        alloc_row = np.where(is_alloc, np.cumsum(is_alloc) - 1, -1).astype(np.int64)
        at = np.flatnonzero(is_alloc)  # every allocator minute is a run minute
        qv_at = qv_all[at]
        qv_n = n_all[at].astype(np.int64)
        return self._store("quiet_volume", key, (alloc_row, qv_at, qv_n))

    def _quiet_volume_all(
        self, plan: MinutePlan, mats: _Matrices, quiet_window: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """quiet_volume and its window size at every minute of the plan (rows before the
        run are left 0): one pass per window and quiet_window_minutes, whatever the swept
        parameters that pick the allocator minutes (rebalance_minutes, flatten, hold)."""
        first = int(plan.grid.label_ns[0])
        key = (first, int(plan.flags.shape[0]), quiet_window)
        hit = self._cached("quiet_volume_all", key)
        if hit is not None:
            return hit
        n = len(self.symbols)
        n_m = plan.flags.shape[0]
        run_rows = (plan.flags & k.F_WARMUP) == 0
        at_row = np.where(run_rows, np.arange(n_m), -1).astype(np.int64)
        qv_all = np.zeros((n_m, n))
        n_all = np.zeros((n_m, n), np.int64)
        st = k.new_state(n, quiet_window, 0.0)
        st.qv_started[:] = self.started[first]
        quiet_volume_pass_columns(
            mats.v_cols, mats.c_cols, at_row, st.qv_ring, st.qv_sorted, st.qv_count, st.qv_head,
            st.qv_started, quiet_window, qv_all, n_all,
        )  # fmt: skip
        return self._store("quiet_volume_all", key, (qv_all, n_all.astype(np.int32)))

    # --------------------------------------------------------------------- runs

    def run(
        self, cfg: AppConfig, window: Window, *, keep_allocations: bool = False
    ) -> BacktestResult:
        """The backtest run_backtest(cfg, store, symbols, start, end) would give. Allocation
        rows are dropped unless asked for (a sweep never reads them)."""
        if cfg.session.calendar != self.calendar_name:
            raise ValueError("a sweep cannot change the exchange calendar of its data")
        syms = self.symbols
        plan = self.plan(cfg, window)
        mats = self._matrices(plan)
        kp = kernel_params(cfg, len(syms))
        cp = cost_params(cfg.execution)
        alloc_row, qv_at, qv_n = self._quiet_volume(plan, mats, kp.quiet_window)
        n = len(syms)
        st = k.new_state(n, 2, cfg.portfolio.initial_cash)  # the ring is not used here
        st.qv_started[:] = self.started[int(plan.grid.label_ns[0])]
        room = max(1024, 4 * n)
        orders = k.new_orders(self._hint("orders", room))
        fills = k.new_fills(self._hint("fills", room))
        allocs = k.new_allocs(max(room, 64 * (n + 1), 1 << 15))
        n_m = plan.grid.n_minutes
        out = k.new_minute_out(n_m)
        sym_arr = np.array(syms, dtype=object)
        parts: list[pd.DataFrame] = []
        m = 0
        while m < n_m:
            m = k.run_minutes(
                mats.o, mats.c, mats.v, mats.labels, plan.flags, plan.month_id, alloc_row,
                qv_at, qv_n, m, n_m, kp, cp, st, orders, fills, allocs, out,
            )  # fmt: skip
            if m < n_m:
                orders = _room(orders, int(st.counters[k.C_ORDERS]), n)
                fills = _room(fills, int(st.counters[k.C_FILLS]), n)
                used = int(st.counters[k.C_ALLOCS])
                if keep_allocations:
                    allocs = _room(allocs, used, n)
                elif allocs.symbol.shape[0] - used < n + 1:
                    st.counters[k.C_ALLOCS] = 0  # rows nobody reads: reuse the table
        used = int(st.counters[k.C_ALLOCS])
        if keep_allocations and used:
            parts.append(alloc_frame(allocs, used, sym_arr))
        st.counters[k.C_ALLOCS] = 0
        self._remember("orders", int(st.counters[k.C_ORDERS]))
        self._remember("fills", int(st.counters[k.C_FILLS]))
        return collect_result(
            cfg, syms, plan, st, orders, fills, allocs, out, cp, mats.bars_used, parts
        )

    def _hint(self, kind: str, floor: int) -> int:
        """Table room from the largest run so far (growing mid-run costs a copy)."""
        seen = self._cached("room", kind)
        return max(floor, int(seen * 1.25) + 16) if seen else floor

    def _remember(self, kind: str, used: int) -> None:
        seen = self._cached("room", kind) or 0
        self._store("room", kind, max(seen, used))

    def figures(self, cfg: AppConfig, window: Window) -> RunFigures:
        """One run's figures (as summary.json has them) and daily returns, timed."""
        t0 = time.perf_counter()
        result = self.run(cfg, window)
        figures = compute_figures(
            result.equity,
            result.fills,
            start_equity=result.initial_cash,
            overnight_carries=result.overnight_carries,
        )
        daily = daily_returns(result.equity, start_equity=result.initial_cash).to_numpy()
        return RunFigures(figures, daily, time.perf_counter() - t0)


def warm_compiled_code() -> float:
    """Load the compiled kernels (numba's on-disk cache) in this process with one tiny run
    on built-in bars, of the same types a sweep passes; returns the seconds it took."""
    from momentumbot.data.memory import MemoryBarSource
    from momentumbot.data.synthetic import generate_bars

    t0 = time.perf_counter()
    cal = TradingCalendar("XNYS")
    sessions = cal.sessions("2024-01-02", "2024-01-04")
    source = MemoryBarSource(generate_bars(["WARM"], sessions, seed=1, calendar=cal))
    window = Window("2024-01-04", "2024-01-04")
    data = SweepData.load(source, ["WARM"], [window], [30], "XNYS")
    cfg = AppConfig.model_validate(
        {"symbols": ["WARM"], "allocation": {"quiet_window_minutes": 30}}
    )
    data.figures(cfg, window)
    return time.perf_counter() - t0


def _room(table: Any, used: int, n: int) -> Any:
    cap = k.capacity(table)
    if cap - used >= n + 1:
        return table
    return k.grow(table, max(2 * cap, used + 4 * (n + 1)))


def _plan_config(calendar_name: str, quiet_window: int) -> AppConfig:
    return AppConfig.model_validate(
        {
            "allocation": {"quiet_window_minutes": quiet_window},
            "session": {"calendar": calendar_name},
        }
    )

"""The live minute driver: the backtest's compiled kernel stepped one closed minute at a time,
with the fills, cancels and rejections the broker reports booked into the same state.

Paper and live trading call `step` once per closed minute with that minute's bars (NaN for a
symbol without a bar), exactly as the backtest walks its matrix; the kernel decides orders
into the same order table, and the caller (app.trade) diffs it: rows created at a step are
new orders for the broker, rows that were working before and ended without filling in full
are cancels. Nothing here does I/O or reads a clock: time is the bars' labels.

Every mutation is a method call with plain arguments, so a journal of those calls replays
into the same state (journal.replay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.allocation.quiet_volume import quiet_volume_minute, quiet_volume_pass_columns
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid, TradingCalendar
from momentumbot.domain.errors import DataError
from momentumbot.domain.units import EXCHANGE_TZ
from momentumbot.engine import kernel as k
from momentumbot.engine.backtest import (
    BacktestResult,
    MinutePlan,
    alloc_frame,
    collect_result,
    kernel_params,
    minute_flags,
    plan_minutes,
)
from momentumbot.execution.costs import cost_params, fill_commission_micro, tier_rate
from momentumbot.risk.checks import SETTLEMENT_GAP_NS

_ENDED_UNFILLED = (k.S_CANCELLED, k.S_REPLACED, k.S_PARTIAL)


@dataclass(frozen=True)
class StepResult:
    """What one step (or a flatten/cancel outside a step) changed in the order table."""

    label_ns: int
    new_orders: tuple[int, ...]  # rows created: working (send) or skipped (never sent)
    ended_orders: tuple[int, ...]  # rows that were working and ended unfilled: cancel at the broker
    allocated: bool = False
    session_ended: bool = False
    halt: str = ""  # the daily-loss halt tripped at this step: why (its flatten is in new_orders)


@dataclass
class _SessionPlan:
    day: pd.Timestamp
    grid: MinuteGrid
    flags: np.ndarray
    month_id: int
    pos: int = 0


@dataclass
class _Marks:
    label_ns: list[int] = field(default_factory=list)
    flags: list[int] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    minute: list[int] = field(default_factory=list)
    cash: list[int] = field(default_factory=list)
    positions_value: list[float] = field(default_factory=list)
    bench_equity: list[float] = field(default_factory=list)
    halted: list[int] = field(default_factory=list)


def month_id_of(label_ns: int) -> int:
    """Calendar month (New York date) of a bar label, as the kernel counts months."""
    t = pd.Timestamp(label_ns, tz="UTC").tz_convert(EXCHANGE_TZ)
    return t.year * 12 + t.month


class LiveEngine:
    """The kernel state of one trading run, advanced minute by minute."""

    def __init__(
        self, cfg: AppConfig, symbols: list[str], calendar: TradingCalendar | None = None
    ) -> None:
        if not symbols:
            raise DataError("no symbols to trade")
        self.cfg = cfg
        self.symbols = list(symbols)
        self.n = n = len(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.calendar = calendar or TradingCalendar(cfg.session.calendar)
        self.kp = kernel_params(cfg, n, simulate_fills=False)
        self.cp = cost_params(cfg.execution)
        self.st = k.new_state(n, self.kp.quiet_window, cfg.portfolio.initial_cash)
        self.st.counters[k.C_SETTLE_T1] = int(self.kp.settle_t1)  # fills booked before a step
        cap = max(256, 4 * n + 4)
        self.orders = k.new_orders(cap)
        self.fills = k.new_fills(cap)
        self.allocs = k.new_allocs(cap)
        self.first_session: pd.Timestamp | None = None
        self.warm_sessions: pd.DatetimeIndex = pd.DatetimeIndex([])
        self._warm_grid: MinuteGrid | None = None
        self._plan: _SessionPlan | None = None
        self.sessions: list[pd.Timestamp] = []  # sessions stepped into
        self.sessions_completed = 0
        self.bars_used = 0
        self._marks = _Marks()
        self._open: set[int] = set()  # rows working (sent or to be sent)
        self._opens: dict[int, np.ndarray] = {}  # label -> opens, for fill slippage
        self._slippage_pending: dict[int, list[int]] = {}  # label -> fill ids
        # one-minute work arrays, reused
        self._o = np.full((1, n), np.nan)
        self._c = np.full((1, n), np.nan)
        self._v = np.full((1, n), np.nan)
        self._label = np.zeros(1, np.int64)
        self._flag = np.zeros(1, np.int32)
        self._month = np.zeros(1, np.int64)
        self._alloc_row = np.zeros(1, np.int64)
        self._qv_at = np.zeros((1, n))
        self._qv_n = np.zeros((1, n), np.int64)
        self._out = k.new_minute_out(1)

    def preload_compiled(self) -> None:
        """Load (from numba's cache, or compile) the machine code of the minute step, a fill and
        the flatten now, for the argument types those calls use, instead of at the first step
        or fill: each is tens of milliseconds, and a bot that goes silent that long in the first
        minutes of a session places those minutes' orders late (live; or overtaken by a
        lockstep replay)."""
        from numba import typeof

        from momentumbot.compiled import uncompiled

        if uncompiled():  # plain Python (MOMENTUMBOT_JIT=off): nothing to load
            return

        def load(fn: Any, *args: Any) -> None:
            fn.compile(tuple(typeof(a) for a in args))

        st = self.st
        load(
            quiet_volume_minute, self._v[0], self._c[0], True, st.qv_ring, st.qv_sorted,
            st.qv_count, st.qv_head, st.qv_started, self.kp.quiet_window, self._qv_at[0],
            self._qv_n[0],
        )  # fmt: skip
        load(
            k.run_minutes, self._o, self._c, self._v, self._label, self._flag, self._month,
            self._alloc_row, self._qv_at, self._qv_n, 0, 1, self.kp, self.cp, st, self.orders,
            self.fills, self.allocs, self._out,
        )  # fmt: skip
        load(k.apply_fill, 0, 0, 0.0, 0, 0.0, 0, st, self.orders, self.fills)
        load(k._flatten, st, self.orders, 0)
        load(tier_rate, 0.0, self.cp)
        load(fill_commission_micro, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.cp)

    # ------------------------------------------------------------------ warm-up

    def warmup_sessions(self, first_session: pd.Timestamp) -> pd.DatetimeIndex:
        """The sessions before `first_session` whose bars fill the quiet-volume window
        (the same ones a backtest starting at `first_session` walks)."""
        plan = plan_minutes(self.calendar, pd.DatetimeIndex([first_session]), self.cfg)
        return plan.grid.sessions[: plan.n_warmup_sessions]

    def warmup_grid(self, first_session: pd.Timestamp) -> MinuteGrid:
        plan = plan_minutes(self.calendar, pd.DatetimeIndex([first_session]), self.cfg)
        return plan.grid.session_slice(0, plan.n_warmup_sessions)

    def start(
        self,
        first_session: pd.Timestamp,
        warm_o: np.ndarray,
        warm_c: np.ndarray,
        warm_v: np.ndarray,
        qv_started: np.ndarray,
    ) -> None:
        """Warm up on the sessions before `first_session` ((minutes x symbols) on the warm-up
        grid, NaN = no bar) and get ready to step `first_session`'s open.

        `qv_started[j]`: symbol j had a regular-session bar before the warm-up window, so its
        quiet-volume history counts from the window's first minute (as in the backtest).
        """
        if self.first_session is not None:
            raise RuntimeError("the engine has already started")
        first_session = pd.Timestamp(first_session)
        plan = plan_minutes(self.calendar, pd.DatetimeIndex([first_session]), self.cfg)
        n_warm = plan.n_warmup_sessions
        grid = plan.grid.session_slice(0, n_warm)
        m = grid.n_minutes
        if warm_o.shape != (m, self.n):
            raise ValueError(f"warm-up matrices must be {(m, self.n)}, not {warm_o.shape}")
        self.first_session = first_session
        self.warm_sessions = grid.sessions
        self._warm_grid = grid
        self.st.qv_started[:] = np.asarray(qv_started, dtype=np.bool_)
        if m:
            flags = plan.flags[:m]
            alloc_row = np.full(m, -1, np.int64)
            qv_at = np.zeros((0, self.n))
            qv_n = np.zeros((0, self.n), np.int64)
            # C-ordered like the backtest's matrices (the layout run_minutes is fast on);
            # the quiet-volume pass walks symbol-major copies
            o = np.ascontiguousarray(warm_o, dtype=np.float64)
            c = np.ascontiguousarray(warm_c, dtype=np.float64)
            v = np.ascontiguousarray(warm_v, dtype=np.float64)
            st = self.st
            quiet_volume_pass_columns(
                np.ascontiguousarray(v.T), np.ascontiguousarray(c.T), alloc_row, st.qv_ring,
                st.qv_sorted, st.qv_count, st.qv_head, st.qv_started, self.kp.quiet_window,
                qv_at, qv_n,
            )  # fmt: skip
            out = k.new_minute_out(m)
            done = k.run_minutes(
                o, c, v, grid.label_ns, flags, plan.month_id[:m], alloc_row, qv_at, qv_n, 0, m,
                self.kp, self.cp, st, self.orders, self.fills, self.allocs, out,
            )  # fmt: skip
            assert done == m  # warm-up minutes write no rows
        self._open_session(first_session)

    @property
    def started(self) -> bool:
        return self.first_session is not None

    def _open_session(self, day: pd.Timestamp) -> None:
        grid = self.calendar.grid(pd.DatetimeIndex([day]))
        flags = minute_flags(grid, self.cfg, 0)
        self._plan = _SessionPlan(day, grid, flags, day.year * 12 + day.month)
        self._opens.clear()

    def _next_session(self) -> None:
        assert self._plan is not None
        day = self._plan.day
        after = self.calendar.sessions(day + pd.Timedelta(days=1), day + pd.Timedelta(days=20))
        if len(after) == 0:
            raise DataError(f"the calendar has no session after {day.date()}")
        self._open_session(after[0])

    # ------------------------------------------------------------------ minutes

    @property
    def next_label(self) -> int:
        """Label (start, UTC ns) of the next minute to step."""
        plan = self._plan
        if plan is None:
            raise RuntimeError("the engine has not started")
        if plan.pos >= plan.grid.n_minutes:
            self._next_session()
            plan = self._plan
            assert plan is not None
        return int(plan.grid.label_ns[plan.pos])

    @property
    def session_day(self) -> pd.Timestamp:
        assert self._plan is not None
        return self._plan.day

    @property
    def session_open_ns(self) -> int:
        assert self._plan is not None
        return int(self._plan.grid.open_ns[0])

    @property
    def session_close_ns(self) -> int:
        assert self._plan is not None
        return int(self._plan.grid.close_ns[0])

    def _room(self) -> None:
        need = self.n + 2
        st = self.st
        if self.orders.symbol.shape[0] - st.counters[k.C_ORDERS] < need:
            self.orders = k.grow(self.orders, 2 * self.orders.symbol.shape[0] + need)
        if self.fills.symbol.shape[0] - st.counters[k.C_FILLS] < need:
            self.fills = k.grow(self.fills, 2 * self.fills.symbol.shape[0] + need)
        if self.allocs.symbol.shape[0] - st.counters[k.C_ALLOCS] < need:
            self.allocs = k.grow(self.allocs, 2 * self.allocs.symbol.shape[0] + need)

    def step(
        self, label_ns: int, o_row: np.ndarray, c_row: np.ndarray, v_row: np.ndarray
    ) -> StepResult:
        """Advance every symbol over the closed minute `label_ns` (must be `next_label`)."""
        expected = self.next_label
        if label_ns != expected:
            raise ValueError(f"step {label_ns}: the next minute to step is {expected}")
        plan = self._plan
        assert plan is not None
        fl = int(plan.flags[plan.pos])
        if not self.sessions or self.sessions[-1] != plan.day:
            self.sessions.append(plan.day)
        self._o[0] = o_row
        self._c[0] = c_row
        self._v[0] = v_row
        self._label[0] = label_ns
        self._flag[0] = fl
        self._month[0] = plan.month_id
        is_alloc = bool(fl & k.F_ALLOC)
        self._alloc_row[0] = 0 if is_alloc else -1
        st = self.st
        quiet_volume_minute(
            self._v[0], self._c[0], is_alloc, st.qv_ring, st.qv_sorted, st.qv_count,
            st.qv_head, st.qv_started, self.kp.quiet_window, self._qv_at[0], self._qv_n[0],
        )  # fmt: skip
        self._room()
        before = int(st.counters[k.C_ORDERS])
        self._out.halted[0] = 0
        done = k.run_minutes(
            self._o, self._c, self._v, self._label, self._flag, self._month, self._alloc_row,
            self._qv_at, self._qv_n, 0, 1, self.kp, self.cp, st, self.orders, self.fills,
            self.allocs, self._out,
        )  # fmt: skip
        if done != 1:  # pragma: no cover - _room leaves space for a whole minute
            raise RuntimeError("the kernel found no room for one minute")
        after = int(st.counters[k.C_ORDERS])
        ended = self._collect_ended()
        new = tuple(range(before, after))
        for oid in new:
            if self.orders.status[oid] == k.S_WORKING:
                self._open.add(oid)
        mk = self._marks
        mk.label_ns.append(label_ns)
        mk.flags.append(fl)
        mk.session.append(len(self.sessions) - 1)
        mk.minute.append(int(plan.grid.minute[plan.pos]))
        mk.cash.append(int(self._out.cash[0]))
        mk.positions_value.append(float(self._out.positions_value[0]))
        mk.bench_equity.append(float(self._out.bench_equity[0]))
        mk.halted.append(int(self._out.halted[0]))
        self.bars_used += int(np.count_nonzero(~np.isnan(c_row)))
        self._opens[label_ns] = np.array(o_row, dtype=np.float64)
        for fid in self._slippage_pending.pop(label_ns, ()):
            self._set_slippage(fid)
        plan.pos += 1
        session_ended = bool(fl & k.F_LAST)
        if session_ended:
            self.sessions_completed += 1
        return StepResult(label_ns, new, ended, is_alloc, session_ended, self._halt_reason())

    def _halt_reason(self) -> str:
        """Why the kernel halted at the step just taken ("" if it did not)."""
        if not self._out.halted[0]:
            return ""
        equity = self._out.cash[0] / 1e6 + float(self._out.positions_value[0])
        loss = float(self.st.day_start_equity[0]) - equity
        return (
            f"daily loss {loss:,.2f} USD reached max_daily_loss {self.kp.max_daily_loss:,.2f} USD"
        )

    def _collect_ended(self) -> tuple[int, ...]:
        ended = []
        status = self.orders.status
        for oid in sorted(self._open):
            s = status[oid]
            if s == k.S_WORKING:
                continue
            if s != k.S_FILLED:
                ended.append(oid)
        for oid in ended:
            self._open.discard(oid)
        for oid in [o for o in self._open if status[o] == k.S_FILLED]:
            self._open.discard(oid)
        return tuple(ended)

    # ------------------------------------------------------------- broker events

    def estimate_commission_micro(self, oid: int, qty: int, price: float) -> int:
        """The commission our cost model charges this fill (the broker's report corrects it)."""
        o = self.orders
        side = int(o.side[oid])
        rate = tier_rate(float(self.st.counters[k.C_MONTH_SHARES]), self.cp)
        return int(
            fill_commission_micro(
                side,
                float(o.filled[oid]),
                float(o.value[oid]),
                float(o.rated[oid]),
                float(qty),
                qty * price,
                rate * qty,
                self.cp,
            )
        )

    def apply_fill(
        self, oid: int, qty: int, price: float, commission_micro: int, label_ns: int
    ) -> int:
        """Book a broker fill of order row `oid` in the bar labelled `label_ns`; returns the
        fill's row."""
        st = self.st
        if not 0 <= oid < int(st.counters[k.C_ORDERS]):
            raise ValueError(f"fill for unknown order row {oid}")
        if qty <= 0:
            raise ValueError(f"fill of {qty} shares")
        try:
            nxt = self.next_label
        except (RuntimeError, DataError):
            nxt = label_ns
        if label_ns >= nxt:
            mid = month_id_of(label_ns)
            if mid != st.counters[k.C_MONTH]:
                st.counters[k.C_MONTH] = mid
                st.counters[k.C_MONTH_SHARES] = 0
        self._room()
        was = int(self.orders.status[oid])
        rate = tier_rate(float(st.counters[k.C_MONTH_SHARES]), self.cp)
        fid = int(st.counters[k.C_FILLS])
        k.apply_fill(
            oid, int(qty), float(price), int(commission_micro), 0.0, int(label_ns), st,
            self.orders, self.fills,
        )  # fmt: skip
        self.orders.rated[oid] += rate * qty
        status = int(self.orders.status[oid])
        if was in _ENDED_UNFILLED and status != k.S_FILLED:
            self.orders.status[oid] = k.S_PARTIAL
        if status == k.S_FILLED:
            self._open.discard(oid)
            s = int(self.orders.symbol[oid])
            if st.working[s] == oid:
                st.working[s] = -1
        if label_ns in self._opens:
            self._set_slippage(fid)
        else:
            self._slippage_pending.setdefault(label_ns, []).append(fid)
        return fid

    def _set_slippage(self, fid: int) -> None:
        f = self.fills
        label = int(f.time_ns[fid])
        opens = self._opens.get(label)
        if opens is None:
            return
        bar_open = float(opens[int(f.symbol[fid])])
        if math.isnan(bar_open):
            return
        f.slippage[fid] = int(f.side[fid]) * (float(f.price[fid]) - bar_open) * int(f.quantity[fid])

    def adjust_commission(self, fid: int, commission_micro: int) -> int:
        """The broker reported this fill's commission: book the difference; returns it."""
        old = int(self.fills.commission[fid])
        delta = int(commission_micro) - old
        if delta:
            self.fills.commission[fid] = int(commission_micro)
            self.st.counters[k.C_CASH] -= delta
            c = self.st.counters
            if c[k.C_SETTLE_T1] == 1 and int(self.fills.side[fid]) < 0:
                since = int(self.fills.time_ns[fid]) - int(c[k.C_SETTLE_FROM])
                if 0 <= since < SETTLEMENT_GAP_NS:  # the proceeds have not settled yet
                    c[k.C_PENDING] -= delta
        return delta

    def end_order(self, oid: int) -> bool:
        """The broker ended a working order we did not cancel (rejected, cancelled, expired,
        lost): the kernel stops counting on it. Returns False if it was not working."""
        o = self.orders
        if o.status[oid] != k.S_WORKING:
            return False
        o.status[oid] = k.S_PARTIAL if o.filled[oid] > 0 else k.S_CANCELLED
        s = int(o.symbol[oid])
        if self.st.working[s] == oid:
            self.st.working[s] = -1
        self._open.discard(oid)
        return True

    def reissue_sell(self, symbol: str, quantity: int, reason: str, decided_ns: int) -> StepResult:
        """A sell the broker refused, sent again (trading.sell_retry): a new working sell of
        `quantity` (at most the position) in `symbol`, which has no working order."""
        s = self.symbols.index(symbol)
        if self.st.working[s] >= 0:
            raise ValueError(f"{symbol} has a working order; a sell is not re-issued beside it")
        if not 0 < quantity <= int(self.st.position[s]):
            raise ValueError(f"re-issued sell of {quantity} {symbol}: not within the position")
        self._room()
        reason_code = k.REASONS.index(reason)
        oid = int(
            k._new_order(
                self.st,
                self.orders,
                s,
                k.SELL,
                int(quantity),
                reason_code,
                int(decided_ns),
                k.S_WORKING,
            )
        )
        self._open.add(oid)
        return StepResult(int(decided_ns), (oid,), ())

    def veto(self, oid: int) -> None:
        """Risk refused an order decided at this step: it becomes `skipped`, never sent."""
        o = self.orders
        if o.filled[oid] > 0:
            raise ValueError(f"order {oid} has fills; it cannot be vetoed")
        o.status[oid] = k.S_SKIPPED
        s = int(o.symbol[oid])
        if self.st.working[s] == oid:
            self.st.working[s] = -1
        self._open.discard(oid)

    def resize(self, oid: int, quantity: int) -> None:
        """Risk cut an order decided at this step to `quantity` shares (> 0)."""
        if quantity <= 0:
            raise ValueError("resize to a positive quantity; veto to drop an order")
        self.orders.quantity[oid] = int(quantity)

    def flatten(self, decided_ns: int) -> StepResult:
        """Cancel every working order and sell every position now (kill switch, daily loss);
        nothing more is decided in this session."""
        self._room()
        before = int(self.st.counters[k.C_ORDERS])
        k._flatten(self.st, self.orders, int(decided_ns))
        self.st.counters[k.C_AFTER_FLATTEN] = 1
        after = int(self.st.counters[k.C_ORDERS])
        ended = self._collect_ended()
        new = tuple(range(before, after))
        self._open.update(new)
        return StepResult(int(decided_ns), new, ended)

    def cancel_all(self, decided_ns: int) -> StepResult:
        """Cancel every working order (no flatten); nothing more is decided this session."""
        for s in range(self.n):
            oid = int(self.st.working[s])
            if oid >= 0:
                self.end_order(oid)
        self.st.counters[k.C_AFTER_FLATTEN] = 1
        return StepResult(int(decided_ns), (), self._collect_ended())

    # ------------------------------------------------------------------ views

    @property
    def cash_micro(self) -> int:
        return int(self.st.counters[k.C_CASH])

    def positions(self) -> dict[str, int]:
        return {s: int(q) for s, q in zip(self.symbols, self.st.position, strict=True) if q}

    def positions_value(self) -> float:
        """The positions' value marked at the latest minute stepped (0 before any)."""
        pv = self._marks.positions_value
        return float(pv[-1]) if pv else 0.0

    def equity(self) -> float:
        pos = self.st.position
        px = np.nan_to_num(self.st.last_close)
        return self.cash_micro / 1e6 + float(np.dot(pos.astype(np.float64), px))

    def session_start_equity(self) -> float | None:
        """Equity at the first bar close of the latest session stepped."""
        mk = self._marks
        if not mk.label_ns:
            return None
        cur = mk.session[-1]
        i = len(mk.session) - 1
        while i > 0 and mk.session[i - 1] == cur:
            i -= 1
        return mk.cash[i] / 1e6 + mk.positions_value[i]

    def session_marks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bar labels, equity, buy-and-hold) at each minute stepped of the latest session; the
        buy-and-hold is the run's equal-weight benchmark scaled to the session's first equity."""
        mk = self._marks
        if not mk.label_ns:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        cur = mk.session[-1]
        i = len(mk.session) - 1
        while i > 0 and mk.session[i - 1] == cur:
            i -= 1
        labels = np.asarray(mk.label_ns[i:], np.int64)
        equity = np.asarray(mk.cash[i:], np.float64) / 1e6 + np.asarray(mk.positions_value[i:])
        bench = np.asarray(mk.bench_equity[i:], np.float64)
        scale = equity[0] / bench[0] if bench[0] else 0.0
        return labels, equity, bench * scale

    def working_orders(self) -> list[int]:
        return sorted(self._open)

    def order_count(self) -> int:
        return int(self.st.counters[k.C_ORDERS])

    def fill_count(self) -> int:
        return int(self.st.counters[k.C_FILLS])

    def order_row(self, oid: int) -> tuple[str, int, int, str, int, str, int]:
        """(symbol, side, quantity, reason, decided_ns, status, filled) of one order row."""
        o = self.orders
        return (
            self.symbols[int(o.symbol[oid])],
            int(o.side[oid]),
            int(o.quantity[oid]),
            k.REASONS[int(o.reason[oid])],
            int(o.decided_ns[oid]),
            k.STATUSES[int(o.status[oid])],
            int(o.filled[oid]),
        )

    def last_allocation(self) -> dict[str, tuple[float, int]]:
        """symbol -> (budget, target shares) from the latest allocator run."""
        n_a = int(self.st.counters[k.C_ALLOCS])
        if n_a < self.n:
            return {}
        a = self.allocs
        return {
            self.symbols[int(a.symbol[r])]: (float(a.budget[r]), int(a.target[r]))
            for r in range(n_a - self.n, n_a)
        }

    # ------------------------------------------------------------------ report

    def result(self) -> BacktestResult:
        """The run's tables in the backtest's form (same run-folder writer, same figures)."""
        if self._warm_grid is None:
            raise RuntimeError("the engine has not started")
        warm = self._warm_grid
        mk = self._marks
        sessions = pd.DatetimeIndex(list(warm.sessions) + list(self.sessions))
        n_warm_s = len(warm.sessions)
        labels = np.concatenate([warm.label_ns, np.asarray(mk.label_ns, np.int64)])
        sess = np.concatenate([warm.session, np.asarray(mk.session, np.int32) + n_warm_s])
        minute = np.concatenate([warm.minute, np.asarray(mk.minute, np.int32)])
        run_grid = self.calendar.grid(pd.DatetimeIndex(self.sessions)) if self.sessions else None
        open_ns = np.concatenate(
            [warm.open_ns, run_grid.open_ns if run_grid is not None else np.zeros(0, np.int64)]
        )
        close_ns = np.concatenate(
            [warm.close_ns, run_grid.close_ns if run_grid is not None else np.zeros(0, np.int64)]
        )
        grid = MinuteGrid(
            sessions=sessions,
            open_ns=open_ns,
            close_ns=close_ns,
            label_ns=labels.astype(np.int64),
            session=sess.astype(np.int32),
            minute=minute.astype(np.int32),
        )
        flags = np.concatenate(
            [np.full(warm.n_minutes, k.F_WARMUP, np.int32), np.asarray(mk.flags, np.int32)]
        )
        months = np.asarray([d.year * 12 + d.month for d in sessions], np.int64)
        plan = MinutePlan(
            grid=grid, flags=flags, month_id=months[grid.session], n_warmup_sessions=n_warm_s
        )
        zeros_i = np.zeros(warm.n_minutes, np.int64)
        zeros_f = np.zeros(warm.n_minutes)
        out = k.MinuteOut(
            cash=np.concatenate([zeros_i, np.asarray(mk.cash, np.int64)]),
            positions_value=np.concatenate([zeros_f, np.asarray(mk.positions_value)]),
            bench_equity=np.concatenate([zeros_f, np.asarray(mk.bench_equity)]),
            halted=np.concatenate(
                [np.zeros(warm.n_minutes, np.int8), np.asarray(mk.halted, np.int8)]
            ),
        )
        sym_arr = np.array(self.symbols, dtype=object)
        n_a = int(self.st.counters[k.C_ALLOCS])
        parts = [alloc_frame(self.allocs, n_a, sym_arr)]
        return collect_result(
            self.cfg, self.symbols, plan, self.st, self.orders, self.fills, self.allocs, out,
            self.cp, self.bars_used, parts,
        )  # fmt: skip

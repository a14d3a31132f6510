"""What a backtest produced: its minute plan, its result and the tables collected from the
kernel's arrays (orders, fills, allocations, equity, the benchmark)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.risk_events import RISK_COLUMNS, risk_events
from momentumbot.engine.time_text import iso_categorical, names_categorical
from momentumbot.engine.time_text import iso_text as iso_text
from momentumbot.execution.costs import CostParams


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


@dataclass(frozen=True)
class MinuteRows:
    """One chunk's rows of the equity and benchmark tables (collect_result's, a chunk at a
    time), handed on as the chunk is done: its run minutes' bar closes (UTC ns), cash and
    positions value (USD), the benchmark's equity, and the benchmark's cash (spent at each
    symbol's first bar, then constant) once it is final: every symbol bought, or the run's
    last chunk; None before."""

    close_ns: np.ndarray  # int64
    cash: np.ndarray
    positions_value: np.ndarray
    bench_equity: np.ndarray
    bench_cash: float | None


def minute_rows(
    plan: MinutePlan, out: k.MinuteOut, st: k.State, lo: int, hi: int, *, last: bool
) -> MinuteRows:
    """The rows of minutes [lo, hi) once the minute loop has run them (copies)."""
    run = plan.flags[lo:hi] & k.F_WARMUP == 0
    settled = last or bool(st.bench_bought.all())
    return MinuteRows(
        close_ns=plan.grid.label_ns[lo:hi][run] + NS_PER_MINUTE,
        cash=out.cash[lo:hi][run] / 1e6,
        positions_value=out.positions_value[lo:hi][run],
        bench_equity=out.bench_equity[lo:hi][run],
        bench_cash=int(st.counters[k.C_BENCH_CASH]) / 1e6 if settled else None,
    )


# the times and names of the tables (engine.time_text)
_iso = iso_categorical
_names = names_categorical


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
    close_times = _iso(close_ns)  # one categorical for both tables: its times read once
    equity_df = pd.DataFrame(
        {"time": close_times, "cash": cash, "positions_value": pv, "equity": cash + pv}
    )
    bench_cash = int(st.counters[k.C_BENCH_CASH]) / 1e6  # spent at the first bars, then constant
    bench_eq = out.bench_equity[run]
    bench_df = pd.DataFrame(
        {
            "time": close_times,
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

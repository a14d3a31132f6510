"""What a backtest produced: its minute plan, its result and the tables collected from the
kernel's arrays (orders, fills, allocations, equity, the benchmark)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import MinuteGrid
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.engine.risk_events import RISK_COLUMNS, risk_events
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
    ns = np.asarray(ns, dtype=np.int64)
    if ns.size and bool(np.all(ns[1:] >= ns[:-1])):  # the tables' times are in order: no sort
        head = np.empty(ns.size, dtype=bool)
        head[0] = True
        np.not_equal(ns[1:], ns[:-1], out=head[1:])
        uniq, codes = ns[head], np.cumsum(head, dtype=np.int64) - 1
    else:
        uniq, codes = np.unique(ns, return_inverse=True)
    return _categorical(codes, iso_text(uniq))


# "YYYY-MM-DDTHH:MM:SS+00:00": the digits' columns, filled in below
_ISO_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00+00:00", dtype=np.uint8)
_ISO_WIDTH = _ISO_TEMPLATE.size
_NS_PER_S = 1_000_000_000
_YEAR_10000_S = 253_402_300_800  # 10000-01-01T00:00:00Z


def iso_text(ns: np.ndarray) -> np.ndarray:
    """UTC ns to 'YYYY-MM-DDTHH:MM:SS+00:00' (object array of str): what
    numpy.datetime_as_string(unit="s") + "+00:00" gives, without its 200 ns a time. Whole
    seconds from 1970 to 9999 (every time the engine writes) are formatted with integer
    arithmetic (civil dates from days: H. Hinnant's algorithm); anything else by numpy."""
    ns = np.asarray(ns, dtype=np.int64)
    if ns.size == 0:
        return np.empty(0, dtype=object)
    seconds = ns // _NS_PER_S
    if ns.min() < 0 or seconds.max() >= _YEAR_10000_S or np.any(ns - seconds * _NS_PER_S):
        text = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="s")
        return np.char.add(text, "+00:00").astype(object)
    days = (seconds // 86_400).astype(np.int32)
    sod = (seconds - days.astype(np.int64) * 86_400).astype(np.int32)
    z = days + 719_468  # days from 0000-03-01
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + np.where(mp < 10, 3, -9)
    year = yoe + era * 400 + (month <= 2)
    hour = sod // 3_600
    minute = sod // 60 - hour * 60
    second = sod - (sod // 60) * 60
    chars = np.empty((ns.size, _ISO_WIDTH), dtype=np.uint8)
    chars[:] = _ISO_TEMPLATE
    for col, digit in ((0, year // 1000), (1, year // 100 % 10), (2, year // 10 % 10)):
        chars[:, col] = digit + 48
    chars[:, 3] = year % 10 + 48
    for col, value in ((5, month), (8, day), (11, hour), (14, minute), (17, second)):
        tens = value // 10
        chars[:, col] = tens + 48
        chars[:, col + 1] = value - tens * 10 + 48
    offsets = np.arange(0, _ISO_WIDTH * (ns.size + 1), _ISO_WIDTH, dtype=np.int64)
    text = pa.Array.from_buffers(
        pa.large_string(), ns.size, [None, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )
    return cast("np.ndarray", text.to_numpy(zero_copy_only=False))


def _names(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical[str]:
    """Small integer codes to their names, as a categorical (cheap to build and to write)."""
    return _categorical(codes, np.array(list(names), dtype=object))


def _categorical(codes: np.ndarray, categories: np.ndarray) -> pd.Categorical[str]:
    """A categorical whose categories are Python strings (an object index, not pandas'
    Arrow-backed str): the figures parse and read them as Python objects, which an
    Arrow-backed index would convert to on every read (the run's times: twice as long)."""
    dtype = pd.CategoricalDtype(pd.Index(categories, dtype=object))
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

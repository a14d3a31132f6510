"""The sweep's fast path gives exactly the trades and figures of run_backtest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from momentumbot.config.loader import parse_config
from momentumbot.data.store import BarStore
from momentumbot.engine.backtest import BacktestResult, run_backtest
from momentumbot.optimize.fast import SweepData, Window
from momentumbot.reporting.metrics import compute_figures, daily_returns

# tight for 100,000 USD over 4 symbols: every limit acts in the window
RISK = {
    "max_position_value": 20_000.0,
    "max_gross_exposure": 60_000.0,
    "max_orders_per_minute": 1,
    "max_daily_loss": 200.0,
}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"strategy": {"step": 0.5, "buffer": 0.1}},
    {"strategy": {"step": 2.0, "buffer": 0.6, "shadow_notional": 2500.0}},
    {"allocation": {"rebalance_minutes": 1, "top_k": 2, "rebalance_tolerance": 0.0}},
    {"allocation": {"rebalance_minutes": 30, "quiet_window_minutes": 60, "min_history_bars": 5}},
    {"allocation": {"quiet_window_minutes": 900, "min_quiet_volume": 2000.0, "scorer": "return"}},
    {"session": {"flatten_minutes": 20, "no_new_entries_minutes": 45}},
    {"strategy": {"hold_overnight": True}},
    {"execution": {"commission": "tiered", "max_volume_participation": 0.01, "slippage_bps": 3.0}},
    {"portfolio": {"initial_cash": 25_000.0, "cash_reserve": 0.0}},
    {"risk": RISK},
]


def _same(a: BacktestResult, b: BacktestResult) -> None:
    for name in ("orders", "fills", "equity", "benchmark_equity", "benchmark_fills"):
        pd.testing.assert_frame_equal(
            getattr(a, name).astype(str), getattr(b, name).astype(str), check_exact=True, obj=name
        )
    pd.testing.assert_frame_equal(
        a.allocations.astype(str), b.allocations.astype(str), check_exact=True, obj="allocations"
    )
    pd.testing.assert_frame_equal(a.risk_events, b.risk_events, check_exact=True)
    assert a.final_positions == b.final_positions
    assert a.overnight_carries == b.overnight_carries
    assert a.bars_used == b.bars_used
    np.testing.assert_array_equal(a.plan.flags, b.plan.flags)


def _figures(r: BacktestResult) -> dict[str, Any]:
    return compute_figures(
        r.equity, r.fills, start_equity=r.initial_cash, overnight_carries=r.overnight_carries
    )


@pytest.fixture(scope="module")
def data(synthetic: tuple[Path, list[str]]) -> SweepData:
    store, symbols = synthetic
    windows = [Window("2024-01-04", "2024-01-19"), Window("2024-01-08", "2024-01-12")]
    return SweepData.load(BarStore(store), symbols, windows, [60, 390, 900])


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(
    f"{k}" for section in v.values() for k in section) or "defaults")  # fmt: skip
def test_fast_path_equals_run_backtest(
    variant: dict[str, Any], data: SweepData, synthetic: tuple[Path, list[str]]
) -> None:
    store, symbols = synthetic
    cfg = parse_config({"symbols": symbols, **variant})
    window = Window("2024-01-04", "2024-01-19")
    fast = data.run(cfg, window, keep_allocations=True)
    assert len(fast.fills) > 0
    source = BarStore(store)
    for chunk in (None, 3):  # the engine's own chunking, and chunks of 3 sessions
        ref = run_backtest(cfg, source, start=window.start, end=window.end, chunk_sessions=chunk)
        _same(fast, ref)
        assert _figures(fast) == _figures(ref)
    lean = data.figures(cfg, window)
    assert lean.figures == _figures(fast)
    np.testing.assert_array_equal(
        lean.daily, daily_returns(fast.equity, start_equity=fast.initial_cash).to_numpy()
    )


def test_one_load_serves_every_window_warm(
    data: SweepData, synthetic: tuple[Path, list[str]]
) -> None:
    """A later window starts warm from the sessions before it, as run_backtest does."""
    store, symbols = synthetic
    cfg = parse_config({"symbols": symbols, "allocation": {"rebalance_minutes": 15}})
    window = Window("2024-01-08", "2024-01-12")
    ref = run_backtest(cfg, BarStore(store), start=window.start, end=window.end)
    assert ref.plan.n_warmup_sessions >= 1
    _same(data.run(cfg, window, keep_allocations=True), ref)
    # the caches are not shipped: a pickled copy starts empty and gives the same
    import pickle

    copy = pickle.loads(pickle.dumps(data))
    assert copy._cache == {}
    _same(copy.run(cfg, window, keep_allocations=True), ref)


def test_sweeps_apply_the_risk_limits(data: SweepData) -> None:
    window = Window("2024-01-04", "2024-01-19")
    symbols = data.symbols
    free = data.run(parse_config({"symbols": symbols}), window)
    tight = data.run(parse_config({"symbols": symbols, "risk": RISK}), window)
    acted = set(tight.risk_events.event)
    assert acted == {"cut", "refused", "halt"}, acted
    assert len(tight.orders) != len(free.orders) or not tight.orders.equals(free.orders)


def test_quiet_volume_is_walked_once_per_window_for_every_parameter_set(
    synthetic: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parameter sets that pick other allocator minutes (rebalance_minutes, flatten,
    hold_overnight) share one walk of the window; another quiet window walks again."""
    import momentumbot.optimize.fast as fast

    store, symbols = synthetic
    window = Window("2024-01-08", "2024-01-12")
    data = SweepData.load(BarStore(store), symbols, [window], [390, 60])
    walks: list[int] = []
    original = fast.quiet_volume_pass_columns

    def counting(*args: Any) -> None:
        walks.append(int(args[8]))  # the window length
        original(*args)

    monkeypatch.setattr(fast, "quiet_volume_pass_columns", counting)
    variants: list[dict[str, Any]] = [
        {},
        {"allocation": {"rebalance_minutes": 1}},
        {"allocation": {"rebalance_minutes": 15}},
        {"session": {"flatten_minutes": 20}},
        {"strategy": {"hold_overnight": True, "step": 2.0}},
    ]
    for v in variants:
        cfg = parse_config({"symbols": symbols, **v})
        ref = run_backtest(cfg, BarStore(store), start=window.start, end=window.end)
        _same(data.run(cfg, window, keep_allocations=True), ref)
    assert walks == [390]
    cfg = parse_config({"symbols": symbols, "allocation": {"quiet_window_minutes": 60}})
    data.run(cfg, window)
    assert walks == [390, 60]

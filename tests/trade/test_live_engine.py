"""The live engine (the kernel stepped one minute at a time, fills booked from outside) makes
the same decisions as the backtest when it is fed the backtest's own fills."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, synthetic_sessions, write_synthetic
from momentumbot.engine.backtest import load_matrix, regular_bar_before, run_backtest
from momentumbot.engine.live import LiveEngine

NS_MIN = 60_000_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    s = BarStore(tmp_path_factory.mktemp("store"))
    write_synthetic(s, default_symbols(8), start="2024-01-02", n_sessions=4, seed=11)
    return s


def _live_run(cfg: AppConfig, store: BarStore, syms: list[str], start: str, n: int) -> LiveEngine:
    cal = TradingCalendar()
    bt = run_backtest(
        cfg, store, symbols=syms, start=start, end=str(synthetic_sessions(start, n)[-1].date())
    )
    eng = LiveEngine(cfg, syms, cal)
    first = pd.Timestamp(start)
    wg = eng.warmup_grid(first)
    o, c, v = load_matrix(store, syms, wg.label_ns)
    started = np.array(
        [regular_bar_before(store, cal, s, int(wg.label_ns[0])) for s in syms], dtype=bool
    )
    eng.start(first, o, c, v, started)
    run_grid = cal.grid(synthetic_sessions(start, n))
    ro, rc, rv = load_matrix(store, syms, run_grid.label_ns)
    fills = bt.fills.copy()
    fills["t"] = pd.to_datetime(fills.time, utc=True).dt.as_unit("ns").astype("int64")
    by_label = {t: g for t, g in fills.groupby("t")}
    for m, label in enumerate(run_grid.label_ns):
        for row in by_label.get(int(label), pd.DataFrame()).to_dict("records"):
            eng.apply_fill(
                int(row["order_id"]), int(row["quantity"]), float(row["price"]),
                round(row["commission"] * 1e6), int(label),
            )  # fmt: skip
        eng.step(int(label), ro[m], rc[m], rv[m])
    live = eng.result()
    cols = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status"]
    pd.testing.assert_frame_equal(
        live.orders[cols].astype(str), bt.orders[cols].astype(str), check_dtype=False
    )
    pd.testing.assert_frame_equal(
        live.fills.drop(columns="slippage").astype(str),
        bt.fills.drop(columns="slippage").astype(str),
    )
    np.testing.assert_allclose(live.fills.slippage, bt.fills.slippage, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(live.equity.equity, bt.equity.equity, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(live.allocations.astype(str), bt.allocations.astype(str))
    assert len(bt.orders) > 10
    return eng


def test_live_engine_fed_the_backtest_fills_decides_the_same_orders(store: BarStore) -> None:
    syms = store.symbols()
    _live_run(AppConfig(), store, syms, "2024-01-03", 3)


def test_steps_must_follow_the_calendar(store: BarStore) -> None:
    cfg = AppConfig()
    syms = store.symbols()[:2]
    eng = LiveEngine(cfg, syms)
    first = pd.Timestamp("2024-01-03")
    wg = eng.warmup_grid(first)
    nan = np.full((wg.n_minutes, 2), np.nan)
    eng.start(first, nan, nan, nan, np.zeros(2, bool))
    row = np.full(2, np.nan)
    with pytest.raises(ValueError, match="next minute"):
        eng.step(eng.next_label + NS_MIN, row, row, row)
    eng.step(eng.next_label, row, row, row)

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


def test_with_risk_limits_the_live_engine_cuts_and_halts_as_the_backtest(
    store: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limits act inside the step: the live engine (no gateway) cuts, refuses and halts
    exactly as the backtest, says why for the journal, and reports the halt in the step."""
    from momentumbot.engine.live import StepResult
    from momentumbot.risk.checks import RISK_DAILY_LOSS
    from momentumbot.trading.risk_gate import gate

    limits = {
        "max_position_value": 10_000.0,
        "max_gross_exposure": 40_000.0,
        "max_orders_per_minute": 2,
        "max_daily_loss": 50.0,
    }
    cfg = AppConfig(risk=limits)
    syms = store.symbols()
    steps: list[StepResult] = []
    real_step = LiveEngine.step

    def step(self: LiveEngine, *args: object) -> StepResult:
        res = real_step(self, *args)  # type: ignore[arg-type]
        steps.append(res)
        return res

    monkeypatch.setattr(LiveEngine, "step", step)
    eng = _live_run(cfg, store, syms, "2024-01-03", 3)
    bt = run_backtest(cfg, store, symbols=syms, start="2024-01-03", end="2024-01-05")
    pd.testing.assert_frame_equal(eng.result().risk_events, bt.risk_events)
    assert {"cut", "refused", "halt"} <= set(bt.risk_events.event)
    halts = [r for r in steps if r.halt]
    assert len(halts) == (bt.risk_events.event == "halt").sum()
    assert all("daily loss" in r.halt and "max_daily_loss 50.00 USD" in r.halt for r in halts)
    for r in halts:  # the halt's flatten is among the step's new orders, and nothing else
        assert all(eng.orders.risk[oid] == RISK_DAILY_LOSS for oid in r.new_orders)
    cut = [
        r
        for r in steps
        if any(eng.orders.risk[o] not in (0, RISK_DAILY_LOSS) for o in r.new_orders)
    ]
    adjust = gate(
        eng, cut[0].new_orders, catchup=False, closed_session=False,
        blocked=np.zeros(len(syms), bool), halted="",
    )  # fmt: skip
    whys = {why.split()[0] for _, _, why in adjust}
    assert adjust and whys <= {"max_position_value", "max_gross_exposure", "max_orders_per_minute"}

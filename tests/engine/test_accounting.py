"""Accounting invariants of the engine on random markets (hypothesis).

Each example is a random walk for a few symbols over a warm-up session and two run
sessions, with missing bars, thin volumes and parameters drawn at random; the run's own
tables are then checked against the bars they came from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentumbot.config.schema import AppConfig
from momentumbot.engine.backtest import run_backtest
from momentumbot.testing import MemoryBarSource
from tests.engine.scenario import CAL

SESSIONS = CAL.sessions("2024-06-03", "2024-06-05")
GRID = CAL.grid(SESSIONS)
NS_MIN = 60_000_000_000


def market(
    seed: int, n_sym: int, vol: float, thin: float, missing: float
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frames = {}
    n = GRID.n_minutes
    for i in range(n_sym):
        steps = rng.normal(0.0, vol, n)
        steps[GRID.minute == 0] += rng.normal(0.0, 0.01, int((GRID.minute == 0).sum()))  # gaps
        close = np.round(rng.uniform(5, 200) * np.exp(np.cumsum(steps)), 2)
        open_ = np.round(np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, vol / 3, n)), 2)
        volume = rng.integers(0, int(thin), n)
        keep = rng.random(n) >= missing
        frames[f"S{i}"] = pd.DataFrame(
            {
                "ts": GRID.label_ns[keep],
                "open": open_[keep],
                "high": np.maximum(open_, close)[keep],
                "low": np.minimum(open_, close)[keep],
                "close": close[keep],
                "volume": volume[keep],
            }
        )
    return frames


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_sym=st.integers(1, 4),
    vol=st.sampled_from([0.001, 0.003, 0.008]),
    thin=st.sampled_from([300, 3_000, 50_000]),
    missing=st.sampled_from([0.0, 0.1, 0.5]),
    cash=st.sampled_from([3_000.0, 100_000.0, 2_000_000.0]),
    step=st.sampled_from([0.25, 0.5, 1.0]),
    buffer=st.sampled_from([0.0, 0.1, 0.3]),
    rebalance=st.sampled_from([1, 5, 30]),
    schedule=st.sampled_from(["fixed", "tiered"]),
)
def test_accounting_invariants(
    seed: int, n_sym: int, vol: float, thin: int, missing: float, cash: float,
    step: float, buffer: float, rebalance: int, schedule: str,
) -> None:  # fmt: skip
    frames = market(seed, n_sym, vol, thin, missing)
    cfg = AppConfig(
        symbols=list(frames),
        portfolio={"initial_cash": cash},
        strategy={"step": step, "buffer": buffer},
        allocation={"rebalance_minutes": rebalance, "min_quiet_volume": 10.0},
        execution={"commission": schedule},
    )
    res = run_backtest(cfg, MemoryBarSource(frames), start=str(SESSIONS[1].date()))
    fills, orders, equity = res.fills, res.orders, res.equity
    ftime = pd.to_datetime(fills.time, utc=True).dt.as_unit("ns")
    etime = pd.to_datetime(equity.time, utc=True).dt.as_unit("ns")

    # cash from fills.csv equals the final cash to the cent, and never goes below zero
    signed = np.where(fills.side == "BUY", -1.0, 1.0)
    cash_from_fills = cash + float(
        (signed * fills.quantity * fills.price).sum() - fills.commission.sum()
    )
    assert abs(cash_from_fills - equity.cash.iloc[-1]) < 0.01
    assert (equity.cash >= -1e-9).all()

    # cash + positions marked at the latest closes = equity, at every bar close
    bars = {s: f.set_index("ts") for s, f in frames.items()}
    pos = {s: 0 for s in frames}
    fill_ns = ftime.astype("int64").to_numpy() if len(fills) else np.array([], np.int64)
    fi = 0
    run_labels = GRID.label_ns[GRID.session >= 1]
    last_close = {s: np.nan for s in frames}
    for s, f in bars.items():  # last close before the run
        before = f.index < run_labels[0]
        if before.any():
            last_close[s] = float(f.close[before].iloc[-1])
    assert len(equity) == len(run_labels)
    for m, t in enumerate(run_labels):
        while fi < len(fills) and fill_ns[fi] == t:
            q = int(fills.quantity.iloc[fi])
            pos[fills.symbol.iloc[fi]] += q if fills.side.iloc[fi] == "BUY" else -q
            fi += 1
        for s, f in bars.items():
            if t in f.index:
                last_close[s] = float(f.close.loc[t])
        marked = sum(q * last_close[s] for s, q in pos.items() if q)
        assert abs(equity.positions_value.iloc[m] - marked) < 1e-6 * max(1.0, marked)
        assert abs(equity.equity.iloc[m] - equity.cash.iloc[m] - marked) < 1e-6 * max(1.0, marked)
    assert fi == len(fills)
    assert all(q >= 0 for q in pos.values())
    assert pos == res.final_positions

    # no fill earlier than the bar after its decision; each fill is at a real bar of its symbol
    decided = pd.to_datetime(orders.set_index("order_id").decided_at, utc=True).dt.as_unit("ns")
    assert (ftime.to_numpy() >= decided.loc[fills.order_id].to_numpy()).all()
    for rec in fills.to_dict("records"):
        t = pd.Timestamp(rec["time"]).as_unit("ns").value
        assert t in bars[rec["symbol"]].index

    # no fill except the flatten larger than the volume cap of its bar
    reason = orders.set_index("order_id").reason
    for rec in fills.to_dict("records"):
        if reason.loc[rec["order_id"]] == "flatten":
            continue
        v = bars[rec["symbol"]].volume.loc[pd.Timestamp(rec["time"]).as_unit("ns").value]
        assert rec["quantity"] <= np.floor(0.10 * v + 1e-9)

    # flat at every session end unless a flatten is still working (an overnight carry)
    session_last = etime.groupby(etime.dt.tz_convert("America/New_York").dt.date).max()
    carries = 0
    for close_time in session_last:
        t_ns = close_time.as_unit("ns").value - NS_MIN  # label of the last bar
        upto = fills[ftime.astype("int64").to_numpy() <= t_ns] if len(fills) else fills
        held = (
            upto.assign(q=np.where(upto.side == "BUY", 1, -1) * upto.quantity)
            .groupby("symbol")
            .q.sum()
        )
        carries += int((held > 0).sum())
    assert carries == res.overnight_carries

    # filled quantities add up
    per_order = fills.groupby("order_id").quantity.sum()
    filled = orders.set_index("order_id").filled_quantity
    assert (filled.loc[per_order.index] == per_order).all()
    assert (
        orders[orders.status == "filled"].filled_quantity
        == orders[orders.status == "filled"].quantity
    ).all()
    assert (orders[orders.status == "skipped"].filled_quantity == 0).all()

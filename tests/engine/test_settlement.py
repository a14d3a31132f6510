"""[portfolio] settlement = "T+1" (a cash account) in the compiled minute step: each session's
buys (value and commission) never exceed the cash settled at the session's start, so sale
proceeds are spent only from the next session (no free-riding); the cut is in risk.csv; T+0
(the default) is unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from momentumbot.config.schema import AppConfig
from momentumbot.engine.backtest import run_backtest
from momentumbot.testing import MemoryBarSource
from tests.engine.test_accounting import SESSIONS, market


def _run(settlement: str, seed: int) -> tuple[AppConfig, object]:
    frames = market(seed, 5, 0.004, 3_000, 0.02)
    cfg = AppConfig(
        symbols=list(frames),
        portfolio={"initial_cash": 20_000.0, "settlement": settlement},
        allocation={"rebalance_minutes": 5, "min_quiet_volume": 10.0},
    )
    return cfg, run_backtest(cfg, MemoryBarSource(frames), start=str(SESSIONS[1].date()))


def _per_session(res: object) -> pd.DataFrame:
    fills = res.fills  # type: ignore[attr-defined]
    t = pd.to_datetime(fills.time, utc=True).dt.tz_convert("America/New_York")
    cost = np.where(fills.side == "BUY", fills.quantity * fills.price + fills.commission, 0.0)
    proceeds = np.where(fills.side == "SELL", fills.quantity * fills.price - fills.commission, 0.0)
    return pd.DataFrame({"day": t.dt.date, "buys": cost, "proceeds": proceeds}).groupby("day").sum()


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_t1_buys_only_with_cash_settled_at_the_sessions_start(seed: int) -> None:
    _, res = _run("T+1", seed)
    days = _per_session(res)
    assert len(days) == 2
    settled = 20_000.0
    for day, row in days.iterrows():
        assert row.buys <= settled + 1e-6, f"{day}: buys {row.buys:.2f} > settled {settled:.2f}"
        settled = settled - row.buys + row.proceeds  # the proceeds settle at the next open
    cash = res.equity.cash  # type: ignore[attr-defined]
    assert (cash >= -1e-9).all()


def test_t1_recycles_less_capital_than_t0_and_says_why() -> None:
    seen_cut = False
    for seed in (3, 11, 29):
        _, t0 = _run("T+0", seed)
        _, t1 = _run("T+1", seed)
        d0, d1 = _per_session(t0), _per_session(t1)
        # T+0 recycles the capital many times a day; T+1 spends at most what had settled
        assert d0.buys.iloc[0] > 2 * 20_000.0
        assert d1.buys.iloc[0] <= 20_000.0
        limits = set(t1.risk_events.limit)  # type: ignore[attr-defined]
        assert limits <= {"settlement"}
        seen_cut |= "settlement" in limits
        assert "settlement" not in set(t0.risk_events.limit)  # type: ignore[attr-defined]
    assert seen_cut, "no run needed the settled-cash cut: the test shows nothing"

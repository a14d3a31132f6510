"""Parity: the same bars through `momentumbot backtest` and through `momentumbot trade` against
the simulated gateway (the real ib_async client, step mode) give the same orders and fills,
over two sessions (the second one after a night with the streams kept up)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.data.synthetic import default_symbols
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    FORMING_BARS,
    CliRun,
    Driver,
    cli_progress,
    gateway,
    progress,
    stop_thread,
    synthetic_store,
    write_config,
)

SYMBOLS = default_symbols(6)


def _count_forming(gw: Any) -> dict[str, int]:
    """Counts the forming-bar updates the gateway sends (wraps its forming desk's run)."""
    forming = gw.desks.forming
    calls = {"n": 0}
    run = forming.run

    def counted() -> None:
        calls["n"] += 1
        run()

    forming.run = counted
    return calls


def _run_trade_session(
    store_dir: Path,
    cfg: Path,
    out: Path,
    day: str,
    sessions: int = 1,
    *,
    past_close_seconds: float = 0.0,
    forming_bars: float = FORMING_BARS,
) -> tuple[dict, int]:
    from momentumbot.data.store import BarStore

    async def body() -> tuple[dict, int]:
        async with gateway(BarStore(store_dir), day, forming_bars=forming_bars) as gw:
            run = CliRun(
                ["trade", "--config", str(cfg), "--port", str(gw.port), "--client-id", "7",
                 "--out", str(out), "--sessions", str(sessions), "--no-console"]
            ).start()  # fmt: skip
            drv = Driver(gw, cli_progress(out), lambda: not run.done, past_close_seconds)
            forming = _count_forming(gw)
            await drv.settle(60)
            for _ in range(sessions):
                await drv.run_to("16:01")
                if run.done:
                    break
                await gw.advance_to(gw.now_ns() + 17 * 3600 * 1_000_000_000)
                await drv.settle()
            await stop_thread(run)
            if run.error is not None:
                raise run.error
            acct = gw.broker.accounts["DU0000001"]
            status = {
                "cash_micro": acct.cash_micro,
                "positions": {s: p.qty for s, p in acct.held().items()},
                "forming_updates": forming["n"],
            }
            return status, int(run.code or 0)

    return asyncio.run(body())


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity")
    synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)  # warm-up + 2 sessions
    return root / "store"


def test_backtest_and_paper_trading_give_the_same_orders_and_fills(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(202)  # cancels of replaced orders
    ib_log.allow("Peer closed connection")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    bt = tmp_path / "bt"
    assert main(["backtest", "--config", str(cfg), "--store", str(store_dir), "--start",
                 "2024-01-03", "--end", "2024-01-04", "--out", str(bt), "--no-report"]) == 0  # fmt: skip
    tr = tmp_path / "trade"
    gw_state, code = _run_trade_session(store_dir, cfg, tr, "2024-01-03", sessions=2)
    assert code == 0, (tr / "run.log").read_text()
    assert progress(tr)["state"] == "finished"
    b_orders = pd.read_csv(bt / "orders.csv")
    t_orders = pd.read_csv(tr / "orders.csv")
    assert len(b_orders) > 20
    cols = [
        "order_id",
        "decided_at",
        "symbol",
        "side",
        "quantity",
        "reason",
        "status",
        "filled_quantity",
    ]
    pd.testing.assert_frame_equal(t_orders[cols], b_orders[cols])
    b_fills = pd.read_csv(bt / "fills.csv")
    t_fills = pd.read_csv(tr / "fills.csv")
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t_fills[cols], b_fills[cols], check_exact=False, rtol=0, atol=1e-9
    )
    pd.testing.assert_series_equal(t_fills.slippage, b_fills.slippage, rtol=1e-6, atol=1e-6)
    b_eq = pd.read_csv(bt / "equity.csv")
    t_eq = pd.read_csv(tr / "equity.csv")
    pd.testing.assert_frame_equal(t_eq, b_eq, check_exact=False, atol=1e-6)
    # the journal and the gateway agree on cash and positions
    assert gw_state["positions"] == {}
    assert gw_state["cash_micro"] == round(t_eq.cash.iloc[-1] * 1e6)


def test_with_tight_risk_limits_paper_trading_places_the_backtests_orders(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """The [risk] limits cut and refuse the same orders and halt at the same minute in both
    (a halt in paper or live trading then lasts until `trade --rearm`, so one session)."""
    from momentumbot.data.store import BarStore
    from tests.risk_folder import check_limits
    from tests.test_cli_backtest_risk import LIMITS, risk_toml

    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be
    ib_log.allow("Peer closed connection")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, "\n" + risk_toml(LIMITS))
    bt = tmp_path / "bt"
    assert main(["backtest", "--config", str(cfg), "--store", str(store_dir), "--start",
                 "2024-01-03", "--end", "2024-01-03", "--out", str(bt), "--no-report"]) == 0  # fmt: skip
    tr = tmp_path / "trade"
    gw_state, code = _run_trade_session(store_dir, cfg, tr, "2024-01-03", sessions=1)
    assert code == 0, (tr / "run.log").read_text()
    store = BarStore(store_dir)
    b = check_limits(bt, store, SYMBOLS, LIMITS)
    t = check_limits(tr, store, SYMBOLS, LIMITS)
    assert {"cut", "refused", "halt"} <= set(b["risk"].event)
    pd.testing.assert_frame_equal(t["orders"], b["orders"])
    pd.testing.assert_frame_equal(t["risk"], b["risk"], check_exact=False, atol=1e-6)
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t["fills"][cols], b["fills"][cols], check_exact=False, rtol=0, atol=1e-9
    )
    pd.testing.assert_frame_equal(t["equity"], b["equity"], check_exact=False, atol=1e-6)
    assert t["summary"]["risk"] == b["summary"]["risk"]
    assert gw_state["positions"] == {}
    log = (tr / "run.log").read_text()
    assert "daily loss" in log and "max_position_value" in log


def test_parity_holds_with_forming_bars_and_the_default_bar_grace(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Issue 11: the gateway revises each forming minute every 5 market seconds (as IB does)
    and the bot runs with the default `bar_grace_seconds` (2 s); the clock stops 5 s past each
    close (the next minute's first revision is out). Order for order, fill for fill over two
    sessions: no provisional revision was stepped."""
    from momentumbot.config.loader import load_config

    ib_log.expect(202)
    ib_log.allow("Peer closed connection")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, "bar_grace_seconds = 2.0\n")
    assert load_config(cfg).broker.bar_grace_seconds == 2.0
    bt = tmp_path / "bt"
    assert main(["backtest", "--config", str(cfg), "--store", str(store_dir), "--start",
                 "2024-01-03", "--end", "2024-01-04", "--out", str(bt), "--no-report"]) == 0  # fmt: skip
    tr = tmp_path / "trade"
    gw_state, code = _run_trade_session(
        store_dir, cfg, tr, "2024-01-03", sessions=2, past_close_seconds=5, forming_bars=5
    )
    assert code == 0, (tr / "run.log").read_text()
    assert progress(tr)["state"] == "finished"
    assert gw_state["forming_updates"] > 2 * 390 * 10  # 11 revisions a minute were sent
    b_orders = pd.read_csv(bt / "orders.csv")
    t_orders = pd.read_csv(tr / "orders.csv")
    assert len(b_orders) > 20
    assert set(b_orders.decided_at.str[:10]) == {"2024-01-03", "2024-01-04"}
    cols = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
            "filled_quantity"]  # fmt: skip
    pd.testing.assert_frame_equal(t_orders[cols], b_orders[cols])
    b_fills = pd.read_csv(bt / "fills.csv")
    t_fills = pd.read_csv(tr / "fills.csv")
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t_fills[cols], b_fills[cols], check_exact=False, rtol=0, atol=1e-9
    )
    assert gw_state["positions"] == {}

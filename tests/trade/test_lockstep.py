"""Issue 11: a lockstep replay at `--speed max` gives the backtest's orders and fills. The gateway
runs free on the test's loop (nobody steps its clock: it goes from event to event as fast as its
bar client lets it), with forming bars every 5 s, and the bot is `momentumbot trade` (its own
loop, in a thread) with the default bar grace (2 s), started after the gateway as in the README.
Order for order and fill for fill, and the journal is the gateway's record."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.desks.lockstep import SPEED_MAX
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    CliRun,
    check_books,
    gateway,
    progress,
    replayed,
    stop_thread,
    synthetic_store,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lockstep")
    synthetic_store(root / "store", SYMBOLS, "2024-01-02", 2, seed=5)  # warm-up + 1 session
    return root / "store"


def test_a_lockstep_replay_at_speed_max_equals_the_backtest(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)  # cancels of replaced orders
    ib_log.allow("Peer closed connection")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, "bar_grace_seconds = 2.0\n")
    bt = tmp_path / "bt"
    assert main(["backtest", "--config", str(cfg), "--store", str(store_dir), "--start", DAY,
                 "--end", DAY, "--out", str(bt), "--no-report"]) == 0  # fmt: skip
    tr = tmp_path / "trade"

    async def body() -> tuple[int, dict[str, object]]:
        async with gateway(
            BarStore(store_dir), DAY, step_mode=False, speed=SPEED_MAX, lockstep=True
        ) as gw:
            run = CliRun(
                ["trade", "--config", str(cfg), "--port", str(gw.port), "--client-id", "7",
                 "--out", str(tr), "--sessions", "1", "--no-console"]
            ).start()  # fmt: skip
            await wait_for(lambda: run.done, 300, "the bot to trade the session")
            await stop_thread(run)
            if run.error is not None:
                raise run.error
            check_books(replayed(tr), gw)
            return int(run.code if run.code is not None else -1), gw.status()

    code, status = asyncio.run(body())
    assert code == 0, (tr / "run.log").read_text()
    assert progress(tr)["state"] == "finished"
    lockstep = status["lockstep"]
    assert isinstance(lockstep, dict) and lockstep["points"] >= 2 * 390
    log = (tr / "run.log").read_text()
    assert "started during the session" not in log, "the clock waited for the warm-up"
    b_orders = pd.read_csv(bt / "orders.csv")
    t_orders = pd.read_csv(tr / "orders.csv")
    assert len(b_orders) > 10
    cols = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
            "filled_quantity"]  # fmt: skip
    pd.testing.assert_frame_equal(t_orders[cols], b_orders[cols])
    b_fills = pd.read_csv(bt / "fills.csv")
    t_fills = pd.read_csv(tr / "fills.csv")
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t_fills[cols], b_fills[cols], check_exact=False, rtol=0, atol=1e-9
    )
    acct = status["accounts"]
    assert isinstance(acct, dict) and acct["DU0000001"]["positions"] == {}

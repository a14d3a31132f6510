"""Execution times without a zone (issue 12): the bot as its own process under
`TZ=America/Chicago`, against the gateway writing execution times as a live account at server
version 178 does (`utc-dash`: UTC) or in the TWS login time zone (`naive-local`: New York),
books every fill in the minute the backtest fills it (ib_async alone would read both in
Chicago time: fills an hour or six late, held pending)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.faults import Faults
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    Driver,
    check_books,
    cli_progress,
    gateway,
    progress,
    replayed,
    spawn_trader,
    synthetic_store,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("exec-time")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 2, seed=5)


def spawn_in_chicago(cfg: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    return spawn_trader(cfg, port, out, env={"TZ": "America/Chicago"})


@pytest.mark.parametrize(
    "specs",
    [
        ("exec-time-format=utc-dash",),
        ("exec-time-format=naive-local",),
        ("exec-time-format=naive-local", "exec-correction=2"),  # every other one corrected
    ],
)
def test_bot_in_chicago_books_fills_in_the_backtests_minutes(
    specs: tuple[str, ...], store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """(With `exec-correction` a correction replaces the fill it corrects: no second fill.)"""
    ib_log.tolerate(202)  # cancels of replaced orders
    ib_log.allow("Peer closed connection|Connection reset")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, 'tws_timezone = "America/New_York"\n')
    bt = tmp_path / "bt"
    assert main(["backtest", "--config", str(cfg), "--store", str(store.root), "--start", DAY,
                 "--end", DAY, "--out", str(bt), "--no-report"]) == 0  # fmt: skip
    out = tmp_path / "trade"
    faults = Faults()
    for spec in specs:
        faults.apply(spec)

    async def body() -> None:
        async with gateway(store, DAY, faults=faults) as gw:
            proc = spawn_in_chicago(cfg, gw.port, out)
            drv = Driver(gw, cli_progress(out), lambda: proc.poll() is None)
            await drv.settle(120)
            await drv.run_to("16:01")
            await wait_for(lambda: proc.poll() is not None, 60, "the bot to exit")
            stderr = (tmp_path / "trade-stderr.txt").read_text()
            assert proc.returncode == 0, stderr[-3000:]
            check_books(replayed(out), gw)

    asyncio.run(body())
    assert progress(out)["state"] == "finished"
    b_fills = pd.read_csv(bt / "fills.csv")
    t_fills = pd.read_csv(out / "fills.csv")
    assert len(b_fills) > 10
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t_fills[cols], b_fills[cols], check_exact=False, rtol=0, atol=1e-9
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "equity.csv"), pd.read_csv(bt / "equity.csv"), check_exact=False,
        atol=1e-6,
    )  # fmt: skip
    log = (out / "run.log").read_text()
    assert "booked at the server clock" not in log  # read right, not rescued by the clamp
    if "exec-correction=2" in specs:
        assert log.count("replaced by") >= len(b_fills) // 2 >= 5

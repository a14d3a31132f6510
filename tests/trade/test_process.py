"""`momentumbot trade` as its own process against the gateway: killed with SIGKILL mid-session
and started again it reconciles and carries on; SIGTERM stops it gracefully."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
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
NS = 1_000_000_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("process")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


async def exited(p: subprocess.Popen[bytes], timeout: float = 60) -> int:
    await wait_for(lambda: p.poll() is not None, timeout, "the bot process to exit")
    return int(p.returncode)


def test_killed_with_sigkill_and_restarted_it_reconciles_and_carries_on(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection|Connection reset")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    out = tmp_path / "run"

    async def body() -> None:
        async with gateway(store, DAY, record_path=str(tmp_path / "gw.jsonl")) as gw:
            proc = spawn_trader(cfg, gw.port, out)
            drv = Driver(gw, cli_progress(out), lambda: proc.poll() is None)
            await drv.settle(120)
            await drv.run_to("10:30")
            # kill it while orders are working
            while True:
                await drv.run_to(_hhmm(gw.now_ns() + 60 * NS))
                view = replayed(out)
                if view.engine.working_orders():
                    break
            proc.send_signal(signal.SIGKILL)
            assert await exited(proc) == -signal.SIGKILL
            await gw.advance(180)  # three minutes pass: its orders fill at the gateway
            proc = spawn_trader(cfg, gw.port, out)  # the same command, the same run folder
            drv = Driver(gw, cli_progress(out), lambda: proc.poll() is None)
            await wait_for(
                lambda: (
                    int(progress(out).get("progress_ns", "0") or 0) >= gw.now_ns()
                    and progress(out).get("state") == "trading"
                ),
                120,
                "the restarted bot to catch up",
            )
            await drv.run_to("16:01")
            assert await exited(proc) == 0, (out / "run.log").read_text()[-3000:]
            check_books(replayed(out), gw)
            log = (out / "run.log").read_text()
            assert "resuming run" in log and "adopting execution" in log
            summary = json.loads((out / "summary.json").read_text())
            assert summary["run"]["adopted_executions"] >= 1

    asyncio.run(body())


def test_sigterm_stops_gracefully(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.allow("Peer closed connection|Connection reset")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    out = tmp_path / "run"

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            proc = spawn_trader(cfg, gw.port, out)
            drv = Driver(gw, cli_progress(out), lambda: proc.poll() is None)
            await drv.settle(120)
            await drv.run_to("10:30")
            while not replayed(out).engine.positions():
                await drv.run_to(_hhmm(gw.now_ns() + 60 * NS))
            proc.send_signal(signal.SIGTERM)
            for _ in range(200):  # the flatten fills in the next bar
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
                await gw.advance(60)
            assert await exited(proc) == 0
            view = replayed(out)
            assert view.engine.positions() == {}
            check_books(view, gw)
            summary = json.loads((out / "summary.json").read_text())
            assert summary["run"]["stop_reason"] == "signal SIGTERM"
            assert progress(out)["state"] == "finished"

    asyncio.run(body())


def _hhmm(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")


def _unused(x: Any) -> None:  # pragma: no cover
    del x

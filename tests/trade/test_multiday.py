"""A run of many days trades every session: over a weekday night, a half day, a market
holiday and a weekend, with IB's nightly reset at its real hour every night, with a reconnect
forced and with the bot killed (SIGKILL) and restarted at every point of the day. Each run
gives the backtest's orders and fills in every session and ends by itself after the N-th.

The gateway replays synthetic minute bars (not market data) in step mode: the clock moves a
minute once the bot has dealt with the last one, so faults do not make orders miss."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.faults import Faults
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    CliRun,
    check_books,
    cli_progress,
    gateway,
    progress,
    replayed,
    stop_thread,
    synthetic_store,
    wait_for,
    write_config,
)
from tests.trade.week import (
    CLIENT_ID,
    DAYS,
    NS,
    STORE_SESSIONS,
    STORE_START,
    WeekDriver,
    at,
    compare_with_backtest,
    gateway_ready,
    journal_trading,
)

SYMBOLS = default_symbols(6)
DROPS = "Peer closed connection|Connection reset|API connection failed|Make sure API port|Connect call failed"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("week")
    synthetic_store(root / "store", SYMBOLS, STORE_START, STORE_SESSIONS, seed=11)
    return root / "store"


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("week-cfg") / "cfg.toml", SYMBOLS)


@pytest.fixture(scope="module")
def backtest_dir(store_dir: Path, cfg_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("week-bt") / "bt"
    code = main(["backtest", "--config", str(cfg_path), "--store", str(store_dir), "--start",
                 DAYS[0], "--end", DAYS[-1], "--out", str(out), "--no-report"])  # fmt: skip
    assert code == 0
    return out


def trade_args(cfg: Path, port: int, out: Path) -> list[str]:
    return ["trade", "--config", str(cfg), "--port", str(port), "--client-id", str(CLIENT_ID),
            "--out", str(out), "--sessions", str(len(DAYS)), "--no-console"]  # fmt: skip


def test_a_week_with_a_nightly_reset_every_night(
    store_dir: Path, cfg_path: Path, backtest_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """`trade --sessions 4` across a weekday night, a half day, a holiday and a weekend, with
    every socket dropped at 23:45 every night and the port closed for a second after (an IB
    Gateway restart), and IB's server reset after midnight (1100, then 1102 five minutes later)."""
    ib_log.expect(202, 1100, 1102)
    ib_log.allow(DROPS)
    out = tmp_path / "trade"
    faults = Faults()
    faults.apply("nightly-reset=23:45+1")
    faults.apply("outage=00:15+300")

    async def body() -> tuple[int, int]:
        async with gateway(BarStore(store_dir), DAYS[0], faults=faults) as gw:
            run = CliRun(trade_args(cfg_path, gw.port, out)).start()
            drv = WeekDriver(
                gw, cli_progress(out), lambda: not run.done,
                ready=lambda: gateway_ready(gw, len(SYMBOLS)) and journal_trading(out),
            )  # fmt: skip
            await drv.run_week()
            await stop_thread(run)
            if run.error is not None:
                raise run.error
            resets = [e for e in gw.record.events if e.get("what") == "nightly reset"]
            check_books(replayed(out), gw)
            return int(run.code if run.code is not None else -1), len(resets)

    code, resets = asyncio.run(body())
    log = (out / "run.log").read_text()
    assert code == 0, log
    assert progress(out)["state"] == "finished"
    assert resets >= 6, "a reset every night of the week"
    assert log.count("gateway refused the connection (nightly restart?)") >= 1
    assert " ERROR momentumbot" not in log, log  # the bot's own (run.log has ib_async's too)
    compare_with_backtest(out, backtest_dir)


# the points of the day a fault is forced at, on the days of the week
POINTS = {
    "before the open": at("2024-07-02", "09:10"),
    "the first minute": at("2024-07-02", "09:30") + 30 * NS,
    "mid-session": at("2024-07-02", "12:00"),
    "the last minutes before the flatten": at("2024-07-02", "15:51"),
    "during the flatten": at("2024-07-02", "15:55"),
    "after the close": at("2024-07-02", "16:30"),
    "after midnight": at("2024-07-03", "00:30"),
    "the half day's flatten": at("2024-07-03", "12:55"),
    "the holiday": at("2024-07-04", "12:00"),
    "a weekend": at("2024-07-06", "12:00"),
}


def test_a_reconnect_forced_at_every_point_of_the_day(
    store_dir: Path, cfg_path: Path, backtest_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Dropped sockets, gateway restarts (order ids back to 1) and connectivity losses at every
    point of the day: the rest of the run equals the backtest, nothing lost or duplicated."""
    ib_log.expect(202, 1100, 1101, 1102)
    ib_log.allow(DROPS)
    out = tmp_path / "trade"
    kinds = [
        "drop",
        "restart",
        "outage",
        "drop",
        "restart",
        "drop",
        "outage",
        "drop",
        "restart",
        "drop",
    ]

    async def body() -> tuple[int, list[str]]:
        async with gateway(BarStore(store_dir), DAYS[0]) as gw:
            run = CliRun(trade_args(cfg_path, gw.port, out)).start()
            done: list[str] = []

            def fault(name: str, kind: str) -> Any:
                async def act() -> None:
                    before = gw.stats["connections"]
                    if kind == "drop":
                        gw.nightly_reset(down_seconds=0.5)
                    elif kind == "restart":
                        gw.restart(down_seconds=0.3)
                    else:
                        gw.lose_connectivity(data_lost=name == "after midnight")
                        await asyncio.sleep(0.2)
                        gw.restore_connectivity()
                    if kind != "outage":
                        await wait_for(
                            lambda: gw.stats["connections"] > before, 20, f"a reconnect ({name})"
                        )
                    done.append(name)

                return act

            faults = {
                ns: fault(name, kind)
                for (name, ns), kind in zip(POINTS.items(), kinds, strict=True)
            }
            drv = WeekDriver(
                gw, cli_progress(out), lambda: not run.done,
                ready=lambda: gateway_ready(gw, len(SYMBOLS)) and journal_trading(out),
                faults=faults,
            )  # fmt: skip
            await drv.run_week()
            await stop_thread(run)
            if run.error is not None:
                raise run.error
            check_books(replayed(out), gw)
            return int(run.code if run.code is not None else -1), done

    code, done = asyncio.run(body())
    log = (out / "run.log").read_text()
    assert code == 0, log
    assert done == list(POINTS), done
    assert log.count("reconnected as client") >= 7, log
    assert " ERROR momentumbot" not in log, log  # the bot's own (run.log has ib_async's too)
    compare_with_backtest(out, backtest_dir)


def test_the_bot_killed_and_restarted_at_every_point_of_the_day(
    store_dir: Path, cfg_path: Path, backtest_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """SIGKILL at every point of the day and the same command again: the run folder resumes
    and the run equals the backtest, nothing lost or duplicated."""
    # the bot runs in its own process: no ib_async here, so this guard sees none of its errors
    ib_log.allow(DROPS)
    out = tmp_path / "trade"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    async def body() -> tuple[int, int]:
        async with gateway(BarStore(store_dir), DAYS[0]) as gw:
            cmd = [sys.executable, "-m", "momentumbot", *trade_args(cfg_path, gw.port, out)]
            procs: list[subprocess.Popen[bytes]] = []
            log_fh = open(tmp_path / "stderr.txt", "ab")  # noqa: SIM115

            def start() -> None:
                procs.append(
                    subprocess.Popen(cmd, stdout=log_fh, stderr=log_fh, env=env, cwd=tmp_path)
                )

            def alive() -> bool:
                return procs[-1].poll() is None

            def killer(name: str) -> Any:
                async def act() -> None:
                    procs[-1].send_signal(signal.SIGKILL)
                    await asyncio.get_running_loop().run_in_executor(None, procs[-1].wait)
                    start()
                    await wait_for(
                        lambda: progress(out).get("state") == "starting" or not alive(),
                        60, f"the restart ({name})",
                    )  # fmt: skip

                return act

            start()
            drv = WeekDriver(
                gw, cli_progress(out), alive,
                ready=lambda: gateway_ready(gw, len(SYMBOLS)) and journal_trading(out),
                faults={ns: killer(name) for name, ns in POINTS.items()},
            )  # fmt: skip
            try:
                await drv.run_week()
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: procs[-1].wait(timeout=60)
                )
            finally:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                log_fh.close()
            check_books(replayed(out), gw)
            return int(procs[-1].returncode), len(procs)

    code, starts = asyncio.run(body())
    assert code == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert starts == len(POINTS) + 1
    assert progress(out)["state"] == "finished"
    compare_with_backtest(out, backtest_dir)

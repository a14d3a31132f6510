"""A real recorded trading day (../shared/data, Alpha Vantage 2019-02, 24 symbols) traded end to
end in paper mode at high speed: `momentumbot gateway` and `momentumbot trade` as their own
processes, as a user runs them. Orders are placed and filled, everything is flattened at the
close, and the run folder has the backtest's files plus the journal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from tests.trade.harness import progress, wait_for, write_config

pytestmark = pytest.mark.slow


def test_a_recorded_day_traded_end_to_end_at_high_speed(
    shared_market_data: Path, tmp_path: Path
) -> None:
    files = sorted(
        str(p) for p in (shared_market_data / "eqker_alphavantage_2019-02").glob("*_1min.csv.gz")
    )
    store = tmp_path / "store"
    assert main(["data", "import", *files, "--format", "alphavantage", "--store", str(store)]) == 0
    symbols = sorted(p.name.removesuffix("_1min.csv.gz") for p in map(Path, files))
    cfg = write_config(tmp_path / "cfg.toml", symbols, "server_time_poll_seconds = 0.05\n")
    out = tmp_path / "run"
    record = tmp_path / "gateway.jsonl"

    async def body() -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        gw = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "momentumbot", "gateway", "--store", str(store), "--port", "0",
            "--control-port", "0", "--step", "--start", "2019-02-12", "--record", str(record),
            "--log-level", "WARNING", stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert gw.stdout is not None
        bot = None
        try:
            line = (await asyncio.wait_for(gw.stdout.readline(), 60)).decode().split()
            assert line[0] == "listening", line
            port, control_port = int(line[1].rsplit(":", 1)[1]), int(line[3])
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "momentumbot", "trade", "--config", str(cfg), "--port",
                str(port), "--out", str(out), "--sessions", "1", "--no-console", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            await wait_for(
                lambda: progress(out).get("state") == "trading", 120, "the bot to warm up"
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
            for cmd in (b"speed 1500\n", b"resume\n"):  # 390 market minutes in about 16 s
                writer.write(cmd)
                await writer.drain()
                assert (await reader.readline()).startswith(b"OK")
            _, err = await asyncio.wait_for(bot.communicate(), 120)
            assert bot.returncode == 0, err.decode()[-2000:]
            writer.write(b"status\n")
            await writer.drain()
            status = json.loads((await reader.readline()).decode()[3:])
            writer.write(b"shutdown\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        finally:
            for p in (bot, gw):
                if p is not None and p.returncode is None:
                    p.kill()
                    await p.wait()
        acct = status["accounts"]["DU0000001"]
        assert acct["positions"] == {}, "flattened at the close"
        summary = json.loads((out / "summary.json").read_text())
        assert summary["run"]["kind"] == "paper"
        assert summary["run"]["first_session"] == "2019-02-12"
        assert round(summary["final_equity"] * 1e6) == round(float(acct["cash"]) * 1e6)

    asyncio.run(body())
    for name in ("orders.csv", "fills.csv", "equity.csv", "allocations.csv", "benchmark.csv",
                 "summary.json", "run.log", "config.toml", "journal.sqlite"):  # fmt: skip
        assert (out / name).is_file(), name
    orders = pd.read_csv(out / "orders.csv")
    fills = pd.read_csv(out / "fills.csv")
    assert len(fills) > 20 and (orders.reason == "flatten").any()
    assert set(orders.status) <= {"filled", "partially_filled", "cancelled", "replaced", "skipped"}
    gw_fills = [json.loads(x) for x in record.read_text().splitlines() if '"fill"' in x]
    assert len(gw_fills) == len(fills)
    eq = pd.read_csv(out / "equity.csv")
    assert len(eq) == 390 and eq.positions_value.iloc[-1] == 0
    assert main(["report", "run", str(out)]) == 0  # the report command works on a trade run
    assert (out / "report.html").is_file()

"""`momentumbot gateway` as a user runs it: a subprocess over a Parquet store, driven through the
control port, with ib_async connected to it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from ib_async import IB, MarketOrder, Stock

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import write_synthetic
from tests.gateway.conftest import IbLogGuard, qualified, run, wait_until


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    write_synthetic(BarStore(root), ["AAPL", "MSFT"], start="2024-01-02", n_sessions=3, seed=7)
    return root


class Control:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def __call__(self, line: str) -> str:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        reply = (await asyncio.wait_for(self.reader.readline(), 10)).decode().strip()
        assert reply.startswith("OK"), reply
        return reply[3:]


def test_cli_gateway_with_control_port_and_record(
    store: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    record = tmp_path / "record.jsonl"

    async def body() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "momentumbot", "gateway", "--store", str(store), "--port", "0",
            "--control-port", "0", "--step", "--record", str(record), "--cash", "50000",
            "--log-level", "WARNING",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
            assert line[0] == "listening", line
            port, control_port = int(line[1].rsplit(":", 1)[1]), int(line[3])
            control = Control(*await asyncio.open_connection("127.0.0.1", control_port))
            assert (await control("time")).startswith("2024-01-03T09:00:00")
            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=10)
            try:
                c = (await qualified(ib, "AAPL"))[0]
                assert c is not None
                await control("advance-to 09:40")
                trade = ib.placeOrder(c, MarketOrder("BUY", 10, orderRef="cli-1"))
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)
                await control("advance 120")
                await wait_until(lambda: trade.orderStatus.status == "Filled", what="fill")
                status = json.loads(await control("status"))
                assert status["accounts"]["DU0000001"]["positions"] == {"AAPL": 10}
                assert float(status["accounts"]["DU0000001"]["cash"]) < 50_000
                assert "unknown=" in await control("fault help")
                await control("fault unknown=MSFT")
                ib_log.expect(200)
                assert await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD")) == [None]
            finally:
                ib.disconnect()
            await control("shutdown")
            control.writer.close()
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        events = [json.loads(x) for x in record.read_text().splitlines()]
        fills = [e for e in events if e["event"] == "fill"]
        assert [f["order_ref"] for f in fills] == ["cli-1"] and fills[0]["qty"] == 10
        assert any(e["event"] == "order" and e["what"] == "placed" for e in events)

    run(body())


def test_cli_reports_bad_input_without_a_traceback(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "--store", str(store), "--fault", "frobnicate"]) == 2
    assert "unknown fault" in capsys.readouterr().err
    assert main(["gateway", "--store", str(tmp_path / "empty")]) == 3
    assert "momentumbot data generate" in capsys.readouterr().err
    assert main(["gateway", "--store", str(store), "--fault", "help"]) == 0
    assert "pacing=N/SECONDS" in capsys.readouterr().out

"""`momentumbot status`: one screen on a run from its journal, while the bot runs and after,
equal to the bot's own books, without writing to the journal."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from momentumbot.cli import app, main
from momentumbot.journal.journal import JOURNAL_NAME
from tests.trade.fake_run import fake_run

runner = CliRunner()


def _status(*args: str) -> Any:
    return runner.invoke(app, ["status", *args])


def test_status_while_running_and_after_equals_the_bots_books(tmp_path: Path) -> None:
    out = tmp_path / "run"
    seen: dict[str, Any] = {}

    async def body() -> None:
        async with fake_run(out) as r:
            await r.run_to("10:30")
            e = r.trader.engine
            assert e is not None
            while not (e.positions() and e.working_orders()):
                await r.step()
            res = _status(str(out), "--json")
            assert res.exit_code == 0, res.output
            seen["live"] = json.loads(res.output)
            seen["positions"] = dict(r.fake.positions)
            seen["equity"] = e.equity()
            seen["working"] = {ref for ref, o in r.fake.orders.items() if o.status == "working"}
            table = _status(str(out))
            assert table.exit_code == 0, table.output
            seen["table"] = table.output
            r.trader.kill.trip("test")
            r.trader.wake()
            for _ in range(500):  # the flatten fills in the next bars; the report takes a while
                if r.task.done():
                    break
                r.fake.advance()
                r.trader.kick_time()
                await asyncio.sleep(0.02)
            r.task.result()
            seen["final_positions"] = e.positions()
            seen["final_equity"] = e.equity()

    asyncio.run(body())
    live = seen["live"]
    assert live["running"] is True and live["state"] == "trading" and live["kind"] == "paper"
    assert {p["symbol"]: p["quantity"] for p in live["positions"]} == seen["positions"]
    assert live["equity"] == seen["equity"]
    assert {o["order_ref"] for o in live["working"]} == seen["working"]
    assert live["recent_fills"] and live["fills"] >= len(live["recent_fills"])
    for sym in seen["positions"]:
        assert sym in seen["table"]
    assert "positions" in seen["table"] and "working orders" in seen["table"]

    journal = out / JOURNAL_NAME
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    after = _status(str(out), "--json")
    assert after.exit_code == 0, after.output
    done = json.loads(after.output)
    assert done["running"] is False and done["state"] == "finished"
    assert {p["symbol"]: p["quantity"] for p in done["positions"]} == seen["final_positions"]
    assert done["equity"] == seen["final_equity"]
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before, "status wrote nothing"


def test_status_of_a_folder_that_is_not_a_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a trading run folder" in err and str(tmp_path) in err and "Traceback" not in err

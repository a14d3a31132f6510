"""Exit codes a supervisor acts on: a run whose session ends halted ends there with 9 (a person
should look), its report written and its positions flat; a repeated stop changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from momentumbot.app.trade import TradingHalted
from momentumbot.config.schema import AppConfig
from momentumbot.journal import journal as jr
from tests.trade.fake_run import SYMBOLS, fake_run


def _config(**risk: float) -> AppConfig:
    b = {"reconnect_initial_seconds": 0.001, "server_time_poll_seconds": 5.0,
         "bar_grace_seconds": 0.0}  # fmt: skip
    return AppConfig.model_validate({"symbols": SYMBOLS, "broker": b, "risk": risk})


def test_a_session_that_ends_halted_ends_the_run_with_exit_code_9(tmp_path: Path) -> None:
    out = tmp_path / "run"

    async def body() -> None:
        async with fake_run(out, _config(max_daily_loss=15.0), sessions=2) as r:
            e = r.trader.engine
            assert e is not None
            for _ in range(400):
                if r.trader.state.ended_halted or r.task.done():
                    break
                await r.step()
            with pytest.raises(TradingHalted, match="--rearm") as err:
                await asyncio.wait_for(r.task, 120)  # its reports are written first
            assert err.value.exit_code == 9
            assert "daily loss" in r.trader.state.ended_halted
            assert e.positions() == {} == r.fake.positions
            assert e.sessions_completed == 1

    asyncio.run(body())
    assert (out / "summary.json").is_file(), "the report is written before it ends"
    meta = jr.read_progress(out / jr.JOURNAL_NAME)
    assert "daily loss" in meta["halted"] and meta["state"] == "finished"


def test_a_stop_asked_again_while_stopping_sends_one_flatten_per_position(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"

    async def body() -> None:
        async with fake_run(out) as r:
            e = r.trader.engine
            assert e is not None
            await r.run_to("10:30")
            while len(e.positions()) < 2:
                await r.step()
            held = dict(e.positions())
            placed = len(r.fake.placed)
            r.trader.kill.trip("first stop")
            r.trader.wake()
            await r.settle()
            r.trader.kill.trip("second stop")  # SIGTERM again, `momentumbot stop` again
            r.trader.kill.trip("third stop")
            outcome = await r.stop()
            assert outcome.stop_reason == "first stop"
            sells = [r.fake.orders[ref] for ref in r.fake.placed[placed:]]
            by_symbol: dict[str, int] = {}
            for o in sells:
                by_symbol[o.symbol] = by_symbol.get(o.symbol, 0) + 1
            assert set(by_symbol) == set(held), (by_symbol, held)
            assert all(n == 1 for n in by_symbol.values()), by_symbol
            assert r.fake.positions == {}

    asyncio.run(body())

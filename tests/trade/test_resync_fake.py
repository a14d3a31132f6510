"""Resyncs that fail and long outages, against the in-memory fake broker (fast): a resync never
parks the bot, trades the symbols that resubscribed, gives up with exit code 8 when it stays
degraded; a backlog of missed minutes sends only the latest minute's buys. The same against the
real gateway and ib_async: test_farms.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from momentumbot.journal import journal as jr
from momentumbot.trading.resync import ResyncGaveUp
from tests.trade.fake_run import SYMBOLS, FakeRun, config, fake_run

FAST: dict[str, Any] = {"reconnect_max_seconds": 0.005}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def spin(turns: int = 300) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def outage_then_restore(r: FakeRun, minutes: int) -> None:
    r.fake.lose_connectivity()
    r.fake.advance(minutes)
    await spin()
    r.fake.restore_connectivity()


def test_a_resync_with_every_history_request_failing_retries_until_the_farm_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config(**FAST)) as r:
            await r.run_to("10:00")
            e = r.trader.engine
            assert e is not None
            r.fake.fail_history = {"*"}
            await outage_then_restore(r, 1)
            held_from = e.next_label
            await asyncio.sleep(0.05)  # many failed tries, real backoff
            r.fake.advance(1)
            await spin()
            assert not r.trader.conn.can_trade and e.next_label == held_from
            assert r.trader.session is not None
            assert r.trader.session.connection.degraded.active
            assert any(
                rec.levelno == logging.ERROR and "degraded" in rec.getMessage()
                for rec in caplog.records
            ), "an ERROR says the bot is degraded"
            r.fake.fail_history = set()  # the farm is back
            await r.until(lambda: r.trader.conn.can_trade, "the resync")
            await r.settle()
            assert e.next_label == r.fake.now_ns, "the held minutes are stepped"
            assert not r.trader.session.connection.degraded.active
            await r.run_to("10:30")
            r.check_books()

    run(body())


def test_one_symbol_failing_is_stale_and_the_others_trade(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config(**FAST)) as r:
            await r.run_to("10:00")
            e = r.trader.engine
            assert e is not None and r.trader.session is not None
            deg = r.trader.session.connection.degraded
            r.fake.fail_history = {SYMBOLS[0]}
            await outage_then_restore(r, 1)
            await r.until(lambda: r.trader.conn.can_trade, "trading the others")
            assert set(deg.stale) == {SYMBOLS[0]}
            await r.step(3)
            assert e.next_label == r.fake.now_ns, "minutes step without the stale symbol"
            r.fake.fail_history = set()
            await r.until(lambda: not deg.active, "the stale symbol resubscribed")
            await r.run_to("10:30")
            r.check_books()

    run(body())


def test_a_resync_degraded_too_long_exits_with_code_8(tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(resync_give_up_minutes=0.002, **FAST)  # 0.12 s
        async with fake_run(tmp_path / "out", cfg) as r:
            await r.run_to("10:00")
            r.fake.fail_history = {"*"}
            await outage_then_restore(r, 1)
            await asyncio.wait({r.task}, timeout=10)
            assert r.task.done()
            with pytest.raises(ResyncGaveUp) as err:
                r.task.result()
            assert err.value.exit_code == 8 and "resynchronise" in str(err.value)
            p = jr.read_progress(r.trader.run_dir / jr.JOURNAL_NAME)
            assert p["state"] == "failed"

    run(body())


def test_after_a_long_outage_only_the_latest_minutes_buys_are_sent(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config(**FAST)) as r:
            await r.run_to("10:15")
            e = r.trader.engine
            assert e is not None
            await outage_then_restore(r, 30)
            resumed = r.fake.now_ns
            placed_before = len(r.fake.placed)
            await r.until(lambda: r.trader.conn.can_trade, "the resync")
            await r.settle()
            assert e.next_label == resumed
            sent = r.fake.placed[placed_before:]
            j = jr.Journal.open(r.trader.run_dir / jr.JOURNAL_NAME, create=False)
            try:
                orders, events = j.orders(), j.order_events()
            finally:
                j.close()
            by_ref = {o.order_ref: o for o in orders.values()}
            for ref in sent:  # the missed minutes' sells, and the latest minute's orders
                o = by_ref[ref]
                assert o.side == "SELL" or o.decided_ns == resumed, o
            vetoed = {oid for oid, _, detail in events if "catching up" in (detail or "")}
            assert vetoed, "the missed minutes' buys were vetoed"
            assert all(
                orders[oid].side == "BUY" and orders[oid].decided_ns < resumed for oid in vetoed
            )
            await r.step(2)
            r.check_books()

    run(body())

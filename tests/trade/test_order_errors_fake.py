"""Order errors on the in-memory fake broker: a note keeps the order (no replacement), a
refused modify keeps the original, a refused sell is sent again with backoff (split when the
reason names the value or size), repeated refusals halt buys while the sells go on, and the
reject breaker. The same against the real gateway and ib_async: test_order_errors.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from momentumbot.engine.live import LiveEngine
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.trading.sell_retry import reject_key, says_value_or_size
from tests.trade.fake_run import FakeRun, config, fake_run

NS = 1_000_000_000
VALUE_REJECT = "error 451: The order value 50,000.00 USD exceeds the Total Value Limit"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def journal(r: FakeRun) -> tuple[dict[int, jr.JournalOrder], list[tuple[int, str, str]], list]:
    j = jr.Journal.open(r.trader.run_dir / jr.JOURNAL_NAME, create=False)
    try:
        return j.orders(), j.order_events(), list(j.inputs())
    finally:
        j.close()


async def until_a_sell_is_rejected(r: FakeRun, latest: str = "15:00") -> jr.JournalOrder:
    from tests.trade.fake_run import hhmm

    while True:
        orders, events, _ = journal(r)
        rejected = [orders[o] for o, ev, _ in events if ev == jr.REJECTED]
        sells = [o for o in rejected if o.side == "SELL"]
        if sells:
            return sells[0]
        await r.step()
        assert hhmm(r.fake.now_ns) < latest, "no sell was rejected"


def engine_of(r: FakeRun) -> LiveEngine:
    e = r.trader.engine
    assert e is not None
    return e


def test_reject_texts() -> None:
    assert says_value_or_size(VALUE_REJECT)
    assert not says_value_or_size("error 201: Order rejected - reason:no shares to borrow")
    assert reject_key("error 201: order 12 at 3.50") == reject_key("error 201: order 7 at 4")


def test_a_note_with_the_order_keeps_it_and_sends_no_replacement(tmp_path: Path) -> None:
    async def day(out: Path, warn: bool) -> list[str]:
        async with fake_run(out) as r:
            if warn:
                r.fake.warn_orders = ("ib_10349", "Order TIF was set to DAY based on order preset.")
            await r.run_to("11:00")
            r.check_books()
            orders, events, inputs = journal(r)
            if warn:
                noted = {o for o, ev, _ in events if ev == "ib_10349"}
                assert noted and noted == {o.oid for o in orders.values() if o.ib_order_id}
                assert not [i for i in inputs if i.kind == rp.END], "no order ended"
            # (reason, oid) of each order placed: the run id differs between the runs
            return [f"{ref.split(':')[0]}:{ref.split(':')[-1]}" for ref in r.fake.placed]

    async def body() -> None:
        plain = await day(tmp_path / "plain", False)
        warned = await day(tmp_path / "warned", True)
        assert warned == plain, "the same orders, none replaced"

    run(body())


def test_a_refused_modify_keeps_the_original_then_cancels_it(tmp_path: Path) -> None:
    cfg = config(order_type="marketable_limit", limit_offset_bps=0.0, limit_timeout_seconds=30)

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            r.fake.reject_modify = "error 201: Order rejected - reason:cannot be modified"
            await r.run_to("12:00")
            assert r.fake.modify_refusals > 0
            r.check_books()
            orders, events, _ = journal(r)
            failed = {o for o, ev, _ in events if ev == "modify_failed"}
            assert failed
            assert r.trader.stats.rejected == 0
            for oid in failed:
                names = [ev for o, ev, _ in events if o == oid]
                # kept working after the refusal; ended only by the cancel IB confirmed
                assert jr.REJECTED not in names, names
                assert orders[oid].state in (jr.CANCELLED, jr.FILLED, jr.CANCEL_SENT), names

    run(body())


def test_a_rejected_sell_is_sent_again_after_the_backoff(tmp_path: Path) -> None:
    cfg = config(sell_retry_seconds=90.0)

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            await r.run_to("14:05")
            r.fake.reject_sells.append("error 201: Order rejected - reason:no route")
            rejected = await until_a_sell_is_rejected(r)
            assert rejected.symbol in engine_of(r).positions()
            _, _, inputs = journal(r)
            assert not [i for i in inputs if i.kind == rp.REISSUE], "not before the backoff"
            await r.step(3)
            orders, _, inputs = journal(r)
            again = [i for i in inputs if i.kind == rp.REISSUE]
            assert len(again) == 1 and again[0].info["symbol"] == rejected.symbol
            assert again[0].label_ns >= rejected.decided_ns + 90 * NS
            new = max(orders.values(), key=lambda o: o.oid if o.symbol == rejected.symbol else -1)
            assert new.side == "SELL" and new.reason == rejected.reason
            await r.step(2)
            r.check_books()
            assert not r.trader.state.buys_halted

    run(body())


def test_a_value_reject_splits_the_sell(tmp_path: Path) -> None:
    cfg = config(sell_retry_seconds=1.0)

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            await r.run_to("14:05")
            r.fake.reject_sells.append(VALUE_REJECT)
            rejected = await until_a_sell_is_rejected(r)
            position = engine_of(r).positions()[rejected.symbol]
            await r.step(2)
            _, _, inputs = journal(r)
            first = next(i for i in inputs if i.kind == rp.REISSUE)
            assert first.info["qty"] == -(-position // 2), (first.info, position)
            await r.step(3)
            r.check_books()

    run(body())


def test_repeated_sell_rejects_halt_buys_and_the_sells_go_on(tmp_path: Path) -> None:
    cfg = config(sell_retry_seconds=1.0, sell_rejects_before_halt=2)

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            await r.run_to("14:05")
            r.fake.reject_sells.extend(["error 201: no route A", "error 201: no route B"])
            rejected = await until_a_sell_is_rejected(r)
            while r.fake.reject_sells:
                await r.step()
            await r.step(3)
            halted = r.trader.state.buys_halted
            assert rejected.symbol in halted and "still trying to sell" in halted
            assert r.trader.halted == halted  # the console and the report say so
            assert rejected.symbol not in engine_of(r).positions(), "sold in the end"
            n_before = len(journal(r)[0])
            await r.run_to("15:30")
            orders, _, _ = journal(r)
            later = [o for o in orders.values() if o.oid >= n_before]
            assert not [o for o in later if o.side == "BUY" and o.state != jr.SKIPPED]
            r.check_books()

    run(body())


def test_the_breaker_halts_buys_after_identical_rejects(tmp_path: Path) -> None:
    cfg = config(buy_breaker_rejects=3)

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            r.fake.reject_next.extend(f"error 201: order {i} refused" for i in range(3))
            while r.fake.reject_next:
                await r.step()
            await r.step()
            assert "3 orders rejected" in r.trader.state.buys_halted
            n_before = len(journal(r)[0])
            await r.run_to("11:00")
            orders, _, _ = journal(r)
            later = [o for o in orders.values() if o.oid >= n_before and o.side == "BUY"]
            assert all(o.state == jr.SKIPPED for o in later)
            r.check_books()

    run(body())

"""The trader against the in-memory fake broker: routing, partial fills, rejections,
reconnects and resyncs, each a whole trading morning in well under a second (no TCP, no
sleeps). The same scenarios against the real gateway and ib_async are in test_faults.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from momentumbot.app.trade import TradingStopped
from momentumbot.domain.orders import OrderState
from momentumbot.journal import journal as jr
from momentumbot.trading.routing import TRANSITIONS, RoutingError, check_transition
from tests.trade.fake_run import FakeRun, config, fake_run, hhmm


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def journal(r: FakeRun) -> tuple[dict[int, jr.JournalOrder], list[tuple[int, str, str]]]:
    j = jr.Journal.open(r.trader.run_dir / jr.JOURNAL_NAME, create=False)
    try:
        return j.orders(), j.order_events()
    finally:
        j.close()


def test_orders_are_routed_journaled_first_and_booked(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            await r.run_to("11:00")
            e = r.trader.engine
            assert e is not None and e.fill_count() > 0 and e.positions()
            r.check_books()
            out = await r.stop()
            assert out.stop_reason == "test" and out.fills == len(r.fake.executions)
            assert r.fake.positions == {}, "the stop flattened"
            r.check_books()
            orders, events = journal(r)
            sent = {o.oid for o in orders.values() if o.order_ref in r.fake.orders}
            assert sent and len(sent) == len(r.fake.orders), "each order reached the broker once"
            for oid in sent:
                names = [ev for o, ev, _ in events if o == oid]
                assert names[:2] == [jr.INTENT, jr.SENT], names  # journaled before it was sent
                assert orders[oid].state in (jr.FILLED, jr.CANCELLED), orders[oid]

    run(body())


def test_partial_fills_over_several_bars_are_booked_at_their_minutes(tmp_path: Path) -> None:
    cfg = config(execution={"max_volume_participation": 0.002})

    async def body() -> None:
        async with fake_run(tmp_path / "out", cfg) as r:
            await r.run_to("11:30")
            r.check_books()
            per_order: dict[str, set[int]] = {}
            for x in r.fake.executions:
                per_order.setdefault(x.order_ref, set()).add(x.time_ns)
            assert sum(len(t) > 1 for t in per_order.values()) >= 3, "orders fill over bars"
            e = r.trader.engine
            assert e is not None
            filled = {ref: 0 for ref in per_order}
            for x in r.fake.executions:
                filled[x.order_ref] += x.quantity
            assert all(r.fake.orders[ref].filled == q for ref, q in filled.items())

    run(body())


def test_a_rejected_order_ends_in_the_journal_and_the_engine(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            r.fake.reject_next.append("no shares to borrow")
            await r.until_orders_working()
            await r.until(lambda: r.trader.stats.rejected == 1, "the rejection")
            await r.step()
            orders, events = journal(r)
            rejected = [o for o in orders.values() if o.state == jr.REJECTED]
            assert len(rejected) == 1
            detail = [d for o, ev, d in events if o == rejected[0].oid and ev == jr.REJECTED]
            assert detail == ["no shares to borrow"]
            e = r.trader.engine
            assert e is not None and rejected[0].oid not in e.working_orders()
            await r.run_to("10:30")
            r.check_books()

    run(body())


def test_a_dropped_link_holds_minutes_reconnects_and_adopts_the_fills_made_meanwhile(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config(reconnect_max_seconds=0.01)) as r:
            await r.until_orders_working()
            progress = r.trader.progress_ns
            r.fake.refuse_connections = 10**6  # the gateway restarts: connections refused
            r.fake.drop()
            await r.until(lambda: not r.trader.conn.connected, "the drop noticed")
            r.fake.advance(3)  # the working orders fill while the bot is away
            for _ in range(200):
                await asyncio.sleep(0)
            assert r.trader.progress_ns == progress, "no minute is stepped while disconnected"
            assert r.fake.executions, "fills happened while away"
            r.fake.refuse_connections = 0
            await r.until(lambda: r.trader.conn.can_trade, "reconnect and resync")
            await r.settle()
            assert r.trader.stats.reconnects == 1 and r.trader.stats.adopted >= 1
            assert r.trader.progress_ns == r.fake.now_ns, "the minutes missed are stepped"
            await r.run_to("10:45")
            r.check_books()

    run(body())


def test_a_crashed_bot_restarted_resumes_from_its_journal_and_reconciles(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        out = tmp_path / "out"
        async with fake_run(out) as first:
            await first.until_orders_working()
            working = set(first.fake.orders)
            first.task.cancel()  # the process dies with orders working at the broker
            await first.until(lambda: first.task.done(), "the crash")
            fake = first.fake
        fake.advance(2)  # the market moves on while the bot is down: those orders fill
        assert fake.executions
        async with fake_run(out, fake=fake) as second:
            tr = second.trader
            assert tr.run_id == first.trader.run_id, "the same run, resumed"
            assert tr.stats.adopted >= 1, "the fills made while down are adopted"
            await second.run_to("10:45")
            second.check_books()  # nothing placed twice, every fill booked once
            assert {x.order_ref for x in fake.executions} >= working

    run(body())


@pytest.mark.parametrize("data_lost", [False, True])
def test_connectivity_lost_holds_orders_and_minutes_and_the_restore_resyncs(
    data_lost: bool, tmp_path: Path
) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            await r.until_orders_working()
            e = r.trader.engine
            assert e is not None
            r.fake.lose_connectivity()
            held_from = e.next_label
            r.fake.advance(3)
            for _ in range(200):
                await asyncio.sleep(0)
            assert e.next_label == held_from, "no minute is stepped while connectivity is lost"
            assert r.trader.conn.describe().startswith("connectivity lost")
            r.fake.restore_connectivity(data_lost=data_lost)
            await r.until(lambda: r.trader.conn.can_trade, "the resync")
            await r.settle()
            assert e.next_label == r.fake.now_ns, "the held minutes are stepped"
            assert r.trader.stats.outages == 1 and r.trader.stats.resubscribes == 2
            assert r.trader.stats.adopted >= 1, "fills not delivered meanwhile are adopted"
            await r.run_to("10:45")
            r.check_books()

    run(body())


def test_a_server_that_stops_answering_the_time_is_dropped_and_reconnected(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            await r.run_to("10:00")
            r.fake.silent_clock = True
            for _ in range(50):
                r.trader.kick_time()
                await asyncio.sleep(0)
                if r.fake.connects > 1 or not r.fake.connected:
                    break
            r.fake.silent_clock = False
            await r.until(lambda: r.trader.stats.reconnects == 1, "the reconnect")
            await r.until(lambda: r.trader.conn.can_trade, "the resync")
            await r.run_to("10:30")
            r.check_books()

    run(body())


def test_a_mismatch_found_by_reconciliation_stops_trading(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            await r.run_to("10:00")
            r.fake.positions["SYN002"] = r.fake.positions.get("SYN002", 0) + 100  # not ours
            r.fake.drop()
            with pytest.raises(TradingStopped, match=r"reconciliation \(reconnect\) found what"):
                await r.until(lambda: False, "the stop")
            assert hhmm(r.fake.now_ns) == "10:00"

    run(body())


def test_the_routing_table_allows_only_its_transitions() -> None:
    done = set(jr.DONE_STATES)
    assert set(TRANSITIONS) == set(OrderState) - done, "every open state has its row"
    check_transition(1, jr.INTENT, jr.SENT)
    check_transition(1, None, jr.SENT)  # not seen yet: the journal's own state is taken
    for state in done:
        with pytest.raises(RoutingError, match=f"{state} -> sent"):
            check_transition(1, state, jr.SENT)
    with pytest.raises(RoutingError):
        check_transition(1, jr.WORKING, jr.INTENT)

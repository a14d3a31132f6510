"""Faults against the simulated gateway (real ib_async client, step mode): each test ends with
no order lost or duplicated and the journal's positions and cash equal to the gateway's."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.config.loader import load_config
from momentumbot.config.schema import ExecutionConfig
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.clock import ny_ns
from momentumbot.gateway.server import GatewayServer
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    Session,
    check_books,
    synthetic_store,
    trading,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"
NS = 1_000_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("faults")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def cfg(tmp: Path, extra: str = "") -> Any:
    return load_config(write_config(tmp / "cfg.toml", SYMBOLS, extra))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def until_orders_working(s: Session, latest: str = "15:30") -> None:
    """Step minute by minute until the bot has orders working at the gateway."""
    while not s.trader.engine.working_orders():
        await s.drv.run_to(_plus_minute(s))
        assert _ny(s.gw.now_ns()) < latest, "no order was working all day"


def _ny(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")


def _plus_minute(s: Session | GatewayServer) -> str:
    gw = s.gw if isinstance(s, Session) else s
    return _ny(gw.now_ns() + 60 * NS)


async def reconnected(s: Session, before: int) -> None:
    await wait_for(
        lambda: s.trader.stats.reconnects > before and s.trader.conn.can_trade, 20, "a reconnect"
    )


def events(out: Path) -> list[tuple[int, str, str]]:
    j = Journal.open(out / JOURNAL_NAME, create=False)
    try:
        return j.order_events()
    finally:
        j.close()


def test_dropped_socket_mid_session(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.allow("Peer closed connection|Connection reset|API connection failed")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            await until_orders_working(s)
            s.trader.broker.drop()  # the socket goes away under the bot ...
            await s.gw.advance(120)  # ... and two minutes pass: fills it cannot hear
            await reconnected(s, 0)
            await s.drv.settle()
            await s.drv.run_to("16:01")
            out = await s.finish()
            assert out.sessions == 1
            assert s.trader.stats.adopted >= 1, "the fills made while away are adopted"
            check_books(s.trader, s.gw)

    run(body())


def test_connectivity_lost_and_restored(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1102)
    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            await until_orders_working(s)
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            held_from = s.trader.engine.next_label
            await s.gw.advance(180)  # fills happen at the exchange; their messages are held
            assert s.trader.engine.next_label == held_from, "no minute is stepped during 1100"
            s.gw.restore_connectivity()
            await wait_for(lambda: s.trader.conn.can_trade, 10, "1102 and resync")
            await s.drv.settle()
            await s.drv.run_to("16:01")
            out = await s.finish()
            assert out.sessions == 1 and s.trader.stats.outages == 1
            check_books(s.trader, s.gw)

    run(body())


def test_connectivity_lost_with_order_messages_dropped(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1101)
    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            await until_orders_working(s)
            s.gw.lose_connectivity(data_lost=True, drop_order_events=True)
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            await s.gw.advance(120)
            s.gw.restore_connectivity()  # 1101: streams gone, fill messages lost
            await wait_for(lambda: s.trader.conn.can_trade, 10, "1101 and resync")
            await s.drv.settle()
            await s.drv.run_to("16:01")
            await s.finish()
            assert s.trader.stats.adopted >= 1
            check_books(s.trader, s.gw)

    run(body())


def test_nightly_reset(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.allow("Peer closed connection|Connection reset|API connection failed|Make sure API port")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            await until_orders_working(s)
            s.gw.nightly_reset(down_seconds=0.6)  # every socket dropped, refused for a while
            await s.gw.advance(60)
            await reconnected(s, 0)
            await s.drv.settle()
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)

    run(body())


def test_gateway_restart_rolls_order_ids_back(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection|Connection reset|API connection failed")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("11:00")
            s.gw.restart()  # nextValidId back to 1: the bot must not reuse ids
            await reconnected(s, 0)
            await s.drv.settle()
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)

    run(body())


def test_partial_fills_across_bars(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.expect(202)
    ib_log.allow("Peer closed connection")
    extra = "\n[execution]\nmax_volume_participation = 0.002\n"

    async def body() -> None:
        gw_kwargs = {"execution": ExecutionConfig(max_volume_participation=0.002)}
        async with trading(
            store, DAY, tmp_path / "out", cfg(tmp_path, extra), gw_kwargs=gw_kwargs
        ) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            fills = pd.read_csv(tmp_path / "out" / "fills.csv")
            per_order = fills.groupby("order_id").time.nunique()
            assert (per_order > 1).sum() >= 3, "some orders fill over several bars"

    run(body())


def test_an_order_rejected(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.expect(201, 202)
    ib_log.allow("Peer closed connection|Canceled order")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:00")
            s.gw.apply_fault("reject=1")
            await s.drv.run_to("16:01")
            await s.finish()
            assert s.trader.stats.rejected == 1
            check_books(s.trader, s.gw)
            rejected = [e for e in events(s.out) if e[1] == "rejected"]
            assert len(rejected) == 1 and "201" in rejected[0][2]
            orders = pd.read_csv(s.out / "orders.csv").set_index("order_id")
            assert orders.loc[rejected[0][0], "status"] == "cancelled"

    run(body())


def test_client_id_in_use_at_start(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.expect(326)
    ib_log.allow("Peer closed connection|clientId|API connection failed|Connection reset")

    async def body() -> None:
        gw_kwargs: dict[str, Any] = {}
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path), gw_kwargs=gw_kwargs) as s:
            s.gw.apply_fault("client-id-in-use=7")
            await s.drv.settle(60)
            assert s.trader.broker.client_id == 8, "falls back to the next id (no orders yet)"
            await s.drv.run_to("12:00")
            await s.stop()
            check_books(s.trader, s.gw)

    run(body())


def test_pacing_violation_while_warming_up(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(162)

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            s.gw.apply_fault("pacing=3/1")
            await s.drv.settle(60)
            assert s.trader.broker.pacing_violations >= 1
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)

    run(body())


def test_commission_report_after_its_execution(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """The broker charges more than the model: fills are booked with the model's commission
    and corrected when the late report comes."""
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        pricier = ExecutionConfig.model_validate({"fixed": {"minimum": 1.25, "per_share": 0.006}})
        gw_kwargs = {"execution": pricier}
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path), gw_kwargs=gw_kwargs) as s:
            s.gw.apply_fault("commission-delay=0.05")
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            await asyncio.sleep(0.1)
            check_books(s.trader, s.gw)
            notes = [e for e in events(s.out) if e[1] == "fill"]
            assert notes

    run(body())


def test_kill_switch_stop_file_flattens_and_reports(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be
    ib_log.allow("Peer closed connection")
    from momentumbot.cli import main

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            while not s.trader.engine.positions():
                await s.drv.run_to(_plus_minute(s))
            assert main(["stop", str(s.out)]) == 0  # writes the stop file
            # the flatten is decided at the next closed minute and fills at the one after; with
            # forming bars each minute takes the bot a server-time round trip: room for a
            # loaded machine
            for _ in range(30):
                await asyncio.sleep(0.05)
                if s.task.done():
                    break
                await s.gw.advance(60)
            out = await s.finish()
            assert "stop file" in out.stop_reason
            assert s.trader.engine.positions() == {}
            check_books(s.trader, s.gw)
            summary = json.loads((s.out / "summary.json").read_text())
            assert "stop file" in summary["run"]["stop_reason"]
            assert not s.gw.broker.accounts["DU0000001"].held()

    run(body())


def test_daily_loss_limit_flattens_and_halts(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        extra = "\n[risk]\nmax_daily_loss = 15.0\n"
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            assert s.trader.halted and "daily loss" in s.trader.halted
            check_books(s.trader, s.gw)
            orders = pd.read_csv(s.out / "orders.csv")
            flat = orders[orders.reason == "flatten"]
            halt_at = flat.decided_at.min()
            after = orders[(orders.decided_at > halt_at) & (orders.status != "skipped")]
            assert after.empty, "nothing is sent after the halt"
            j = Journal.open(s.out / JOURNAL_NAME, create=False)
            assert "daily loss" in (j.get("halted") or "")
            j.close()

    run(body())


def test_silent_streams_are_resubscribed(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """The gateway stops sending bars without a word (as after IB's nightly reset): once the
    server's clock is stale_stream_seconds past the last bar, the bot resubscribes and steps
    the missed minutes from the new subscription's history."""
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        extra = "stale_stream_seconds = 150\n"
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("11:00")
            for sess in list(s.gw.sessions):  # drop every subscription, tell nobody
                for sub in list(sess.subs.values()):
                    s.gw.desks.market_data.drop(sub)
                sess.subs.clear()
            stuck = s.trader.engine.next_label
            for _ in range(4):
                await s.gw.advance(60)
                await asyncio.sleep(0.05)
            await wait_for(lambda: s.trader.stats.stale_streams == 1, 10, "stale detection")
            await s.drv.settle()
            assert s.trader.engine.next_label > stuck
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            eq = pd.read_csv(s.out / "equity.csv")
            assert len(eq) == 390, "every minute was stepped, the silent ones from history"

    run(body())


def test_symbols_without_live_market_data_get_no_buys(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(354)
    ib_log.allow("Peer closed connection")
    blocked = SYMBOLS[1]

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            s.gw.apply_fault(f"no-market-data={blocked}")
            await s.drv.settle(60)
            assert s.trader.blocked[1] and not s.trader.blocked[0]
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            placed = {e["symbol"] for e in s.gw.record.events if e.get("what") == "placed"}
            assert blocked not in placed and placed
            orders = pd.read_csv(s.out / "orders.csv")
            assert (orders[orders.symbol == blocked].status == "skipped").all()

    run(body())


def test_marketable_limit_orders_turn_into_market_orders(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)  # a replaced limit is cancelled only if it was still working
    ib_log.tolerate(104)  # a modify can cross the fill it was meant to hurry
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        extra = (
            'order_type = "marketable_limit"\nlimit_offset_bps = 0.0\nlimit_timeout_seconds = 30\n'
        )
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            placed = [e for e in s.gw.record.events if e.get("what") == "placed"]
            assert placed and all(e["order_type"] == "LMT" for e in placed)
            modified = [e for e in s.gw.record.events if e.get("what") == "modified"]
            assert modified and all(e["order_type"] == "MKT" for e in modified)
            assert any(e[1] == "to_market" for e in events(s.out))

    run(body())


def test_the_journal_replays_into_the_same_engine(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    from tests.trade.harness import replayed

    ib_log.expect(202)
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        extra = "\n[execution]\nmax_volume_participation = 0.01\n"
        gw_kwargs = {"execution": ExecutionConfig(max_volume_participation=0.01)}
        async with trading(
            store, DAY, tmp_path / "out", cfg(tmp_path, extra), gw_kwargs=gw_kwargs
        ) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            live = s.trader.engine.result()
            again = replayed(s.out).engine.result()
            pd.testing.assert_frame_equal(live.orders, again.orders)
            pd.testing.assert_frame_equal(live.fills, again.fills)
            pd.testing.assert_frame_equal(live.equity, again.equity)

    run(body())


def test_a_halt_outlives_a_restart_until_rearmed(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """After the daily loss limit the run stays halted when started again, and trades again
    only with --rearm."""
    from momentumbot.app.trade import TradeOptions, Trader
    from tests.trade.harness import Driver, gateway

    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be
    ib_log.allow("Peer closed connection")
    config = cfg(tmp_path, "\n[risk]\nmax_daily_loss = 15.0\n")
    out = tmp_path / "out"

    async def one(gw: Any, until: str, **opts: Any) -> Trader:
        tr = Trader(
            config, TradeOptions(out_dir=out, port=gw.port, client_id=7, console=False, **opts)
        )
        task = asyncio.create_task(tr.run())
        drv = Driver(gw, lambda: tr.progress_ns, lambda: not task.done())
        await drv.settle(60)
        await drv.run_to(until)
        tr.kill.trip("test")
        tr.wake()
        while not task.done():
            await asyncio.sleep(0.02)
            if not task.done():
                await gw.advance(60)
        task.result()
        return tr

    async def body() -> None:
        async with gateway(store, DAY) as gw:

            def placed() -> int:
                return len([e for e in gw.record.events if e.get("what") == "placed"])

            first = await one(gw, "14:00")
            assert "daily loss" in first.halted
            after_first = placed()
            second = await one(gw, "14:30")
            assert second.halted == first.halted, "still halted after a restart"
            assert placed() == after_first, "a halted run sent orders"
            third = await one(gw, "15:30", rearm=True)
            assert third.halted == ""
            assert third.progress_ns >= ny_ns(pd.Timestamp(DAY), 15, 0), "re-armed, it steps on"
            log = (out / "run.log").read_text()
            assert "re-armed" in log
            check_books(third, gw)

    run(body())


def test_down_over_the_close_and_back_the_next_morning(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """The bot dies at 15:50 and comes back at 09:20 the next session: the minutes it missed
    are stepped from history, their sells (the flatten) go out and fill at the open, their
    buys are skipped, and the new session is traded."""
    from momentumbot.app.trade import TradeOptions, Trader
    from tests.trade.harness import Driver, gateway

    ib_log.expect(202)
    ib_log.allow("Peer closed connection|Connection reset")
    config = cfg(tmp_path)
    out = tmp_path / "out"

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            tr = Trader(
                config,
                TradeOptions(out_dir=out, port=gw.port, client_id=7, console=False, sessions=2),
            )
            task = asyncio.create_task(tr.run())
            drv = Driver(gw, lambda: tr.progress_ns, lambda: not task.done())
            await drv.settle(60)
            await drv.run_to("15:50")
            while tr.engine is None or not tr.engine.positions():
                await drv.run_to(_plus_minute(gw))
            task.cancel()  # gone, no flatten, no goodbye
            with pytest.raises(asyncio.CancelledError):
                await task
            await gw.advance_to(gw.now_ns() + 17 * 3600 * NS + 30 * 60 * NS)  # 09:20 next day
            tr2 = Trader(
                config,
                TradeOptions(out_dir=out, port=gw.port, client_id=7, console=False, sessions=2),
            )
            task2 = asyncio.create_task(tr2.run())
            drv2 = Driver(gw, lambda: tr2.progress_ns, lambda: not task2.done())
            await drv2.settle(60)
            await drv2.run_to("16:01")
            await wait_for(lambda: task2.done(), 30, "the second session to end")
            task2.result()
            check_books(tr2, gw)
            orders = pd.read_csv(out / "orders.csv")
            day1 = orders[orders.decided_at < "2024-01-04"]
            late = day1[day1.decided_at > "2024-01-03T20:50"]
            assert (late[late.side == "BUY"].status.isin(["skipped"])).all()
            flat = day1[day1.reason == "flatten"]
            assert len(flat) and (flat.status == "filled").all()
            fills = pd.read_csv(out / "fills.csv")
            assert (fills[fills.order_id.isin(flat.order_id)].time >= "2024-01-04").all()

    run(body())


def test_a_gateway_that_stops_answering_is_dropped_and_reconnected(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """TWS frozen (a modal dialog, a hung process): the socket stays up but nothing answers.
    Two unanswered server-time requests in a row: the bot says so, drops the connection and
    reconnects, and the session is traded on."""
    ib_log.allow("Peer closed connection|Connection reset|API connection failed")
    ib_log.tolerate(202)  # an order the engine ends is cancelled; none need be

    async def body() -> None:
        config = cfg(tmp_path, "request_timeout_seconds = 0.3\n")
        async with trading(store, DAY, tmp_path / "out", config) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            answer_time = s.gw.handlers[49]  # reqCurrentTime
            s.gw.handlers[49] = lambda session, r: None
            s.trader.kick_time()
            await wait_for(lambda: "stopped answering" in _log(tmp_path), 20, "the drop")
            s.gw.handlers[49] = answer_time
            await reconnected(s, 0)
            await s.drv.settle()
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)

    run(body())
    log = _log(tmp_path)
    assert "did not answer a server-time request" in log
    assert "the gateway stopped answering: dropping the connection to reconnect" in log


def _log(tmp_path: Path) -> str:
    p = tmp_path / "out" / "run.log"
    return p.read_text() if p.exists() else ""

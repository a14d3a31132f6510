"""Data farms down, broken connectivity and long outages against the simulated gateway (real
ib_async client, step mode): the resync never parks the bot, 2110 holds orders as 1100 does,
1300 reconnects, a degraded run gives up with exit code 8, and after a long outage only the
latest minute's buys are sent. Each test ends with the journal equal to the gateway's record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.faults import Faults
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from momentumbot.trading.resync import ResyncGaveUp
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
MIN = 60 * NS
DROPPED = "Peer closed connection|Connection reset|API connection failed|Make sure API port"
# retries within a second: the farm's return is noticed at once in real time
FAST = "reconnect_max_seconds = 0.5\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("farms")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def cfg(tmp: Path, extra: str = "") -> Any:
    return load_config(write_config(tmp / "cfg.toml", SYMBOLS, FAST + extra))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def faults(*specs: str) -> dict[str, Any]:
    f = Faults()
    for spec in specs:
        f.apply(spec)
    return {"faults": f}


def gateway_orders(s: Session) -> list[dict[str, Any]]:
    return [
        ev for ev in s.gw.record.events if ev.get("event") == "order" and ev.get("what") == "placed"
    ]


async def start_trading(s: Session, at: str = "09:45") -> None:
    await s.drv.settle(60)
    await s.drv.run_to(at)
    while not s.trader.engine.working_orders() and not s.trader.engine.positions():
        await s.drv.run_to(_hhmm(s.gw.now_ns() + MIN))


def _hhmm(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")


async def through_farm_down(s: Session, seconds: int) -> int:
    """Move the market clock through the HMDS farm's down time the way a running clock would
    (10 s at a time, a little real time each), checking the bot steps nothing meanwhile; the
    market time the farm came back."""
    held = s.trader.engine.next_label
    for _ in range(seconds // 10 + 1):
        # while the farm is down: nothing stepped, not trading, the resync degraded (once it is
        # back, a symbol that resubscribes at once may let the bot trade before we look)
        assert s.trader.engine.next_label == held, "no minute is stepped while resyncing"
        assert not s.trader.conn.can_trade and s.trader.session is not None
        assert s.trader.session.connection.degraded.active, "the failing resync is degraded"
        await s.gw.advance(10)
        await asyncio.sleep(0.1)
        if not s.gw.hmds_down:
            break
    assert not s.gw.hmds_down
    return s.gw.now_ns()


async def resumes_within_two_minutes(s: Session, back_ns: int) -> None:
    """After the farm is back, a running clock (10 s of market time per 0.2 s) reaches the bot
    trading again within two market minutes; then it steps every held minute."""

    def resumed() -> bool:  # trading, and every symbol resubscribed
        assert s.trader.session is not None
        return s.trader.conn.can_trade and not s.trader.session.connection.degraded.active

    while not resumed():
        assert s.gw.now_ns() - back_ns < 2 * MIN, "trading did not resume within two minutes"
        await asyncio.sleep(0.2)
        if not resumed():
            await s.gw.advance(10)
    await s.gw.advance_to((s.gw.now_ns() // MIN + 1) * MIN)  # the driver steps whole minutes
    await s.drv.settle()
    await s.drv.run_to(_hhmm(s.gw.now_ns() + 3 * MIN))
    assert s.trader.progress_ns >= s.gw.now_ns() // MIN * MIN


@pytest.mark.parametrize("how", ["restore", "nightly-reset"])
def test_hmds_down_after_a_restore_or_reset_and_trading_resumes(
    how: str, store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(162)
    ib_log.tolerate(202)
    ib_log.allow(DROPPED)
    if how == "restore":
        ib_log.expect(1100, 1102)

    async def body() -> None:
        gw_kw = faults("hmds-down-after-restore=90")
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path), gw_kwargs=gw_kw) as s:
            await start_trading(s)
            if how == "restore":
                s.gw.lose_connectivity()
                await wait_for(lambda: s.trader.conn.outage, 5, "1100")
                await s.gw.advance(60)
                s.gw.restore_connectivity()
            else:
                s.gw.nightly_reset(down_seconds=0.3)
            assert s.gw.hmds_down
            await wait_for(
                lambda: s.trader.session.connection.degraded.active, 20, "a failing resync"
            )
            back = await through_farm_down(s, 90)
            await resumes_within_two_minutes(s, back)
            await s.stop()
            check_books(s.trader, s.gw)

    run(body())


def test_hmds_down_past_the_give_up_time_exits_with_code_8(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1102, 162)
    ib_log.tolerate(202)
    ib_log.allow(DROPPED)

    async def body() -> None:
        c = cfg(tmp_path, "resync_give_up_minutes = 0.05\n")  # 3 s of real time
        async with trading(store, DAY, tmp_path / "out", c) as s:
            await start_trading(s)
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            s.gw.apply_fault("hmds-down=3600")
            s.gw.restore_connectivity()
            await wait_for(lambda: s.task.done(), 30, "the bot to give up")
            with pytest.raises(ResyncGaveUp) as err:
                s.task.result()
            assert err.value.exit_code == 8
            assert "resynchronise" in str(err.value) and "same command" in str(err.value)
            check_books(s.trader, s.gw)

    run(body())


def test_farm_broken_2110_holds_orders_until_restored(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1102)
    ib_log.tolerate(202)
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await start_trading(s)
            s.gw.apply_fault("farm-broken")
            await wait_for(lambda: s.trader.conn.outage, 5, "2110 seen as lost connectivity")
            held_from = s.trader.engine.next_label
            placed = len(gateway_orders(s))
            for _ in range(3):
                await s.gw.advance(60)
                await asyncio.sleep(0.1)
            assert s.trader.engine.next_label == held_from, "no minute is stepped during 2110"
            assert len(gateway_orders(s)) == placed, "no order is sent during 2110"
            s.gw.restore_connectivity()
            await wait_for(lambda: s.trader.conn.can_trade, 20, "1102 and the resync")
            await s.drv.settle()
            await s.drv.run_to(_hhmm(s.gw.now_ns() + 5 * MIN))
            assert s.trader.stats.outages == 1
            await s.stop()
            check_books(s.trader, s.gw)

    run(body())


def test_port_reset_1300_reconnects(store: BarStore, tmp_path: Path, ib_log: IbLogGuard) -> None:
    ib_log.expect(1300)
    ib_log.tolerate(202)
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await start_trading(s)
            s.gw.apply_fault("port-reset")
            await wait_for(
                lambda: s.trader.stats.reconnects == 1 and s.trader.conn.can_trade, 20, "reconnect"
            )
            await s.drv.settle()
            await s.drv.run_to(_hhmm(s.gw.now_ns() + 3 * MIN))
            await s.stop()
            check_books(s.trader, s.gw)

    run(body())


def test_a_30_minute_outage_sends_only_what_the_latest_minute_wants(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1102)
    ib_log.tolerate(202)
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await start_trading(s, "10:00")
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            await s.gw.advance(30 * 60)
            placed = len(gateway_orders(s))
            s.gw.restore_connectivity()
            back = s.gw.now_ns()
            await wait_for(lambda: s.trader.conn.can_trade, 20, "1102 and the resync")
            await s.drv.settle()
            assert s.trader.engine.next_label >= back // MIN * MIN, "the missed minutes stepped"
            sent = [ev["order_ref"] for ev in gateway_orders(s)[placed:]]
            j = Journal.open(s.trader.run_dir / JOURNAL_NAME, create=False)
            try:
                orders, events = j.orders(), j.order_events()
            finally:
                j.close()
            by_ref = {o.order_ref: o for o in orders.values()}
            decided_now = back // MIN * MIN
            for ref in sent:  # sells of the missed minutes, and the latest minute's orders
                o = by_ref[ref]
                assert o.side == "SELL" or o.decided_ns == decided_now, (o, decided_now)
            vetoed = {oid for oid, _, detail in events if "catching up" in (detail or "")}
            assert vetoed, "the missed minutes' buys were vetoed, not sent"
            # the positions afterwards are what the latest minute wanted: its orders fill in
            # the next minute and the gateway's books equal the journal's
            await s.drv.run_to(_hhmm(s.gw.now_ns() + 2 * MIN))
            check_books(s.trader, s.gw)
            await s.stop()
            check_books(s.trader, s.gw)

    run(body())

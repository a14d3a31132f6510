"""Reconciliation across IB days against the simulated gateway (real ib_async client, step
mode) with `executions-window=day` (the default, as IB): a bot down over the close, whose
orders filled while it was away, comes back the next morning when IB no longer reports those
executions; it explains them by positions, adopts them at IB's average cost and trades on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.server import GatewayServer
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from momentumbot.journal.reconcile_days import ADOPTED_PREFIX
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    Driver,
    assert_no_ref_placed_twice,
    gateway,
    synthetic_store,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"
NS = 1_000_000_000
ACCOUNT = "DU0000001"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("days")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def _ny(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")


def check_books_across_days(trader: Any, gw: GatewayServer) -> list[Any]:
    """Positions and cash equal to the gateway's; every gateway fill of the run is in the
    journal, by its execId or (IB no longer reporting it) adopted for its orderRef with its
    quantity; no orderRef placed twice. The adopted fills."""
    e = trader.engine
    acct = gw.broker.accounts[ACCOUNT]
    gw_pos = {s: p.qty for s, p in acct.held().items() if p.qty}
    assert e.positions() == gw_pos, f"positions: journal {e.positions()} gateway {gw_pos}"
    j = Journal.open(trader.run_dir / JOURNAL_NAME, create=False)
    try:
        start = int(j.get("account_cash_start") or 0)
        initial = round(trader.cfg.portfolio.initial_cash * 1e6)
        assert start + e.cash_micro - initial == acct.cash_micro, (
            f"cash: journal {start + e.cash_micro - initial} gateway {acct.cash_micro}"
        )
        fills = j.fills()
    finally:
        j.close()
    assert_no_ref_placed_twice(gw)
    adopted = {f.order_ref: f for f in fills.values() if f.exec_id.startswith(ADOPTED_PREFIX)}
    for g in gw.broker.fills:
        if g.account != ACCOUNT:
            continue
        if g.exec_id in fills:
            continue
        a = adopted.get(g.order_ref)
        assert a is not None, f"gateway fill {g.exec_id} ({g.order_ref}) is not in the journal"
        assert a.quantity == sum(f.qty for f in gw.broker.fills if f.order_ref == g.order_ref), (
            g.order_ref
        )
    assert all(f.fill_index is not None for f in fills.values()), "every fill booked"
    return list(adopted.values())


def test_down_over_the_close_with_fills_while_away(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """The bot dies with orders working at 15:3x; they fill while it is away; it comes back
    at 09:20 the next session, when IB reports none of yesterday's executions: it adopts the
    fills from positions at IB's average cost (marked in the journal and run.log), steps the
    missed minutes and trades the second session; it ends flat, its cash equal to the
    gateway's."""
    from momentumbot.app.trade import TradeOptions, Trader

    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection|Connection reset")
    config = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS))
    out = tmp_path / "out"

    def trader(gw: GatewayServer) -> Trader:
        opts = TradeOptions(out_dir=out, port=gw.port, client_id=7, console=False, sessions=2)
        return Trader(config, opts)

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            assert gw.faults.executions_window == "day"
            tr = trader(gw)
            task = asyncio.create_task(tr.run())
            drv = Driver(gw, lambda: tr.progress_ns, lambda: not task.done())
            await drv.settle(60)
            await drv.run_to("15:30")
            while tr.engine is None or not (
                {o.order_ref for o in gw.broker.working()} and tr.engine.working_orders()
            ):
                await drv.run_to(_ny(gw.now_ns() + 60 * NS))
            working = {o.order_ref for o in gw.broker.working()}
            task.cancel()  # gone with orders working at IB
            with pytest.raises(asyncio.CancelledError):
                await task
            fills_before = len(gw.broker.fills)
            await gw.advance_to_time("09:20", day="2024-01-04")
            filled_away = {f.order_ref for f in gw.broker.fills[fills_before:]}
            assert working & filled_away, "an order of the run filled while it was away"
            tr2 = trader(gw)
            task2 = asyncio.create_task(tr2.run())
            drv2 = Driver(gw, lambda: tr2.progress_ns, lambda: not task2.done())
            await drv2.settle(60)
            await drv2.run_to("16:01")
            await wait_for(lambda: task2.done(), 30, "the second session to end")
            task2.result()
            assert tr2.engine is not None and tr2.engine.positions() == {}, "flat at the end"
            adopted = check_books_across_days(tr2, gw)
            assert {a.order_ref for a in adopted} == working & filled_away
            for a in adopted:
                g = next(f for f in gw.broker.fills if f.order_ref == a.order_ref)
                if g.side > 0:
                    cost = (g.qty * g.price + g.commission_micro / 1e6) / g.qty
                    assert a.price == pytest.approx(cost, abs=1e-6), "at IB's average cost"
            log = (out / "run.log").read_text(encoding="utf-8")
            assert "an earlier IB day" in log and "explained by its position" in log
            assert tr2.stats.adopted == len(adopted)

    asyncio.run(body())


def test_what_it_cannot_explain_stops_with_manual_steps(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Overnight someone sells a share of a position by hand; back the next morning the bot
    cannot explain it (IB no longer reports the day's executions): it stops with exit code 6
    and says exactly what to do in TWS."""
    from ib_async import IB, Contract, MarketOrder, Stock

    from momentumbot.app.trade import TradeOptions, Trader, TradingStopped

    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection|Connection reset")
    config = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS))
    out = tmp_path / "out"

    def trader(gw: GatewayServer) -> Trader:
        opts = TradeOptions(out_dir=out, port=gw.port, client_id=7, console=False, sessions=2)
        return Trader(config, opts)

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            tr = trader(gw)
            task = asyncio.create_task(tr.run())
            drv = Driver(gw, lambda: tr.progress_ns, lambda: not task.done())
            await drv.settle(60)
            await drv.run_to("11:00")
            while tr.engine is None or not tr.engine.positions() or gw.broker.working():
                await drv.run_to(_ny(gw.now_ns() + 60 * NS))
            sym, held = sorted(tr.engine.positions().items())[0]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            hand = IB()
            await hand.connectAsync("127.0.0.1", gw.port, clientId=42, timeout=5)
            try:
                (c,) = await hand.qualifyContractsAsync(Stock(sym, "SMART", "USD"))
                assert isinstance(c, Contract)
                hand.placeOrder(c, MarketOrder("SELL", 1, orderRef="by hand"))
                await hand.reqCurrentTimeAsync()  # the order has been read
                await gw.advance(120)
                await wait_for(lambda: gw.broker.accounts[ACCOUNT].position(sym).qty == held - 1,
                               5, "the sale by hand")  # fmt: skip
            finally:
                hand.disconnect()
            await gw.advance_to_time("09:20", day="2024-01-04")
            tr2 = trader(gw)
            with pytest.raises(TradingStopped) as err:
                await asyncio.wait_for(tr2.run(), 60)
            msg = str(err.value)
            assert f"{sym}: IB holds {held - 1} shares, the journal expects {held}" in msg
            assert f"buy 1 {sym} in TWS so that the position is {held}" in msg
            assert err.value.exit_code == 6
            assert not gw.broker.working(), "nothing of the run left working"

    asyncio.run(body())

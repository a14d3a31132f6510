"""Every injectable fault, seen through the unmodified ib_async client, and a clean reconnect after it."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from ib_async import IB, Contract, LimitOrder, MarketOrder, Stock

from momentumbot.gateway.clock import ManualClock
from momentumbot.gateway.faults import Faults, FaultSpecError
from momentumbot.gateway.server import GatewayServer
from tests.gateway.conftest import (
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)

DROPPED = r"Peer closed connection|reset by peer|Connection lost|Socket disconnect|API connection failed|Make sure API port"


async def contract(ib: IB, symbol: str = "AAPL") -> Contract:
    return (await qualified(ib, symbol))[0]


async def reconnect_and_check(srv: GatewayServer, client_id: int = 1) -> None:
    """After a fault a fresh client connects, syncs and sees the gateway's state."""
    async with connected(srv, client_id=client_id) as ib:
        assert ib.isConnected()
        assert await ib.reqCurrentTimeAsync()
        want = {s: p.qty for a in srv.broker.accounts.values() for s, p in a.held().items()}
        assert {p.contract.symbol: p.position for p in ib.positions()} == want
        # IB reports the executions of the current day only (`executions-window=day`)
        since = srv.desks.orders.window_start_ns()
        want_fills = [f for f in srv.broker.fills if f.client_id == client_id and f.bar_ns >= since]
        assert len(ib.fills()) == len(want_fills)


def test_fault_specs_parse_and_reject_nonsense() -> None:
    f = Faults()
    for spec in (
        "unknown=XYZ,abc", "reject=2", "reject-symbol=AAPL", "insufficient-funds", "pacing=5/10",
        "no-market-data=*", "client-id-in-use=9", "hold-client-id=2.5", "exec-delay=0.5",
        "exec-duplicate", "commission-delay=1", "outage=10:30+90", "nightly-reset=23:45", "restart=12:00",
        "nightly-reset=00:15+300", "restart=23:50+2.5",
    ):  # fmt: skip
        f.apply(spec)
    assert f.unknown_symbols == {"XYZ", "ABC"} and f.reject_next == 2 and f.pacing == (5, 10.0)
    assert f.no_data_for("ANY") and 9 in f.reserved_client_ids and f.outages == [(630, 90.0)]
    assert f.nightly_resets == [(23 * 60 + 45, 0.0), (15, 300.0)]
    assert f.restarts == [(720, 0.0), (23 * 60 + 50, 2.5)]
    for bad in ("frobnicate", "pacing=x", "outage=25:00", "unknown=", "nightly-reset=23:45+-1"):
        with pytest.raises(FaultSpecError):
            f.apply(bad)


def test_unknown_symbol_200(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(200)

    async def body() -> None:
        async with gateway(source) as srv:
            srv.apply_fault("unknown=MSFT")
            async with connected(srv) as ib:
                assert await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD")) == [None]
                bars = await ib.reqHistoricalDataAsync(
                    Stock("MSFT", "SMART", "USD"), "", "1 D", "1 min", "TRADES", True
                )
                assert len(bars) == 0
            await reconnect_and_check(srv)

    run(body())


def test_rejected_order_201_then_next_order_fills(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(201)

    async def body() -> None:
        async with gateway(source) as srv:
            srv.apply_fault("reject=1")
            async with connected(srv) as ib:
                c = await contract(ib)
                await srv.advance_to_time("09:35")
                first = ib.placeOrder(c, MarketOrder("BUY", 10))
                await wait_until(lambda: first.orderStatus.status == "Cancelled", what="rejected")
                assert any(e.errorCode == 201 for e in first.log)
                second = ib.placeOrder(c, MarketOrder("BUY", 10))
                await barrier(ib)
                await srv.advance(60)
                await wait_until(lambda: second.orderStatus.status == "Filled", what="filled")
            assert [e["code"] for e in srv.record.events if e["event"] == "reject"] == [201]
            await reconnect_and_check(srv)

    run(body())


def test_insufficient_funds_201(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(201)

    async def body() -> None:
        async with (
            gateway(source, faults=Faults(insufficient_funds=True)) as srv,
            connected(srv) as ib,
        ):
            c = await contract(ib)
            await srv.advance_to_time("09:35")
            big = ib.placeOrder(c, MarketOrder("BUY", 1_000_000))
            await wait_until(lambda: big.orderStatus.status == "Cancelled", what="rejected")
            assert "FUNDS" in big.log[-1].message.upper() and big.advancedError
            small = ib.placeOrder(c, MarketOrder("BUY", 10))
            await barrier(ib)
            assert small.orderStatus.status == "Submitted"
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_pacing_violation_162_then_recovery(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(162)

    async def body() -> None:
        real = ManualClock()
        async with gateway(source, monotonic=real) as srv:
            srv.apply_fault("pacing=3/0.4")
            async with connected(srv) as ib:
                c = await contract(ib)
                sizes = [
                    len(await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True))
                    for _ in range(4)
                ]
                assert sizes[:3] == [sizes[0]] * 3 and sizes[0] > 0 and sizes[3] == 0
                real.advance(0.45)
                assert (
                    len(await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True))
                    == sizes[0]
                )
            await reconnect_and_check(srv)

    run(body())


def test_client_id_in_use_326(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(326)
    ib_log.allow(r"already in use|API connection failed")

    async def body() -> None:
        real = ManualClock()
        async with gateway(source, monotonic=real) as srv:
            async with connected(srv, client_id=3):
                other = IB()
                with pytest.raises((TimeoutError, ConnectionError)):
                    await other.connectAsync("127.0.0.1", srv.port, clientId=3, timeout=1)
                assert not other.isConnected()
            srv.apply_fault("client-id-in-use=4")
            with pytest.raises((TimeoutError, ConnectionError)):
                await IB().connectAsync("127.0.0.1", srv.port, clientId=4, timeout=1)
            # the id is held for a while after its socket closes
            srv.apply_fault("hold-client-id=0.3")
            async with connected(srv, client_id=5):
                pass
            with pytest.raises((TimeoutError, ConnectionError)):
                await IB().connectAsync("127.0.0.1", srv.port, clientId=5, timeout=1)
            real.advance(0.35)
            await reconnect_and_check(srv, client_id=5)

    run(body())


def test_market_data_not_subscribed_354(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(354)

    async def body() -> None:
        async with (
            gateway(source, faults=Faults(no_market_data={"SPY"})) as srv,
            connected(srv) as ib,
        ):
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, c: errors.append((req_id, code))
            spy, aapl = await contract(ib, "SPY"), await contract(ib, "AAPL")
            spy_ticker = ib.reqMktData(spy)
            rt = ib.reqRealTimeBars(spy, 5, "TRADES", True)
            aapl_ticker = ib.reqMktData(aapl)
            await barrier(ib)
            await srv.advance_to_time("09:32")
            await wait_until(
                lambda: aapl_ticker.last > 0,
                what="AAPL ticks",
            )
            assert [code for _, code in errors] == [354, 354]
            assert math.isnan(spy_ticker.last) and len(rt) == 0, "nothing came"
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_connectivity_lost_and_restored_1100_1102(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(1100, 1102)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, c: codes.append(code)
            c = await contract(ib)
            bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            await srv.advance_to_time("09:35")
            await wait_until(
                lambda: len(bars) > 0 and getattr(bars[-1].date, "minute", None) == 34, what="bars"
            )
            n = len(bars)
            trade = ib.placeOrder(c, MarketOrder("BUY", 100))
            await barrier(ib)
            srv.lose_connectivity()
            await srv.advance(180)
            await barrier(ib)
            assert codes == [1100]
            assert len(bars) == n, "market data is paused during the outage"
            assert srv.broker.fills and not trade.fills, "fills happen but reports are held back"
            srv.restore_connectivity()
            await wait_until(
                lambda: trade.orderStatus.status == "Filled", what="held fills delivered"
            )
            assert codes == [1100, 1102]
            assert sum(f.execution.shares for f in trade.fills) == 100
            await srv.advance(60)
            await wait_until(lambda: len(bars) == n + 1, what="data resumes")
            assert (
                getattr(bars[-1].date, "minute", None) == 38
            )  # the bars of the outage are not replayed
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_connectivity_restored_with_data_lost_1101_drops_subscriptions(
    source: Any, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1101)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = await contract(ib)
            bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            n = len(bars)
            srv.lose_connectivity(data_lost=True)
            await srv.advance_to_time("09:33")
            srv.restore_connectivity()
            await srv.advance(120)
            await barrier(ib)
            assert len(bars) == n, "after 1101 the client must subscribe again"
            again = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            k = len(again)
            await srv.advance(60)
            await wait_until(lambda: len(again) == k + 1, what="new subscription streams")
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_nightly_reset_drops_the_socket_and_state_survives(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.allow(DROPPED)

    async def body() -> None:
        real = ManualClock()
        async with gateway(source, monotonic=real) as srv:
            async with connected(srv) as ib:
                c = await contract(ib)
                await srv.advance_to_time("09:35")
                trade = ib.placeOrder(c, MarketOrder("BUY", 30))
                resting = ib.placeOrder(c, LimitOrder("BUY", 5, 1.0, orderRef="overnight"))
                await barrier(ib)
                await srv.advance(60)
                await wait_until(lambda: trade.orderStatus.status == "Filled", what="filled")
                gone = asyncio.Event()
                ib.disconnectedEvent += gone.set
                srv.nightly_reset(down_seconds=0.2)
                await asyncio.wait_for(gone.wait(), 5)
                assert not ib.isConnected()
            # the port is closed while it is down: refused at once, as while TWS restarts
            t0 = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                await IB().connectAsync("127.0.0.1", srv.port, clientId=1, timeout=5)
            assert time.monotonic() - t0 < 1.0
            real.advance(0.15)
            await asyncio.sleep(0)
            assert not srv.listening, "still closed 0.15 s into its 0.2 s"
            real.advance(0.1)
            await wait_until(lambda: srv.listening, what="the port open again")
            await reconnect_and_check(srv)
            async with connected(srv, client_id=1) as ib2:
                assert [t.order.orderRef for t in ib2.openTrades()] == ["overnight"]
                assert resting.order.orderId in {t.order.orderId for t in ib2.openTrades()}

    run(body())


def test_restart_resets_order_ids(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with gateway(source) as srv:
            async with connected(srv) as ib:
                c = await contract(ib)
                await srv.advance_to_time("09:35")
                before = [ib.placeOrder(c, MarketOrder("BUY", 10)) for _ in range(3)]
                await barrier(ib)
                await srv.advance(60)
                await wait_until(
                    lambda: all(t.orderStatus.status == "Filled" for t in before), what="filled"
                )
                used = {t.order.orderId for t in before}
                srv.restart()
                await wait_until(lambda: not ib.isConnected(), what="dropped")
            async with connected(srv) as ib2:
                # nextValidId rolled back: ib_async hands out ids the gateway has seen before
                after = ib2.placeOrder(c, MarketOrder("BUY", 10))
                await barrier(ib2)
                assert after.order.orderId in used or after.order.orderId < max(used)
                assert after.orderStatus.status == "Submitted"
                await srv.advance(60)
                await wait_until(
                    lambda: after.orderStatus.status == "Filled", what="a new order, not a modify"
                )
                assert after.order.permId not in {t.order.permId for t in before}

    run(body())


def test_delayed_and_duplicated_exec_details(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        real = ManualClock()
        async with (
            gateway(source, real, faults=Faults(exec_delay=0.3, exec_duplicate=True)) as srv,
            connected(srv) as ib,
        ):
            c = await contract(ib)
            await srv.advance_to_time("09:35")
            trade = ib.placeOrder(c, MarketOrder("BUY", 20))
            await barrier(ib)
            seen: list[str] = []
            ib.execDetailsEvent += lambda t, f: seen.append(f.execution.execId)
            await srv.advance(60)
            await wait_until(lambda: trade.orderStatus.status == "Filled", what="status")
            await barrier(ib)
            assert trade.fills == [], "the status arrived before the execution"
            real.advance(0.3)
            await wait_until(lambda: len(trade.fills) == 1, what="late execution")
            await barrier(ib)
            assert len(trade.fills) == 1 and len(seen) == 1, "ib_async drops the duplicate execId"
            real.advance(0.01)  # the commission report follows its execDetails
            await wait_until(
                lambda: trade.fills[0].commissionReport.commission > 0, what="commission"
            )
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_late_commission_reports(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        real = ManualClock()
        async with (
            gateway(source, real, faults=Faults(commission_delay=0.3)) as srv,
            connected(srv) as ib,
        ):
            c = await contract(ib)
            await srv.advance_to_time("09:35")
            trade = ib.placeOrder(c, MarketOrder("BUY", 20))
            await barrier(ib)
            await srv.advance(60)
            await wait_until(lambda: len(trade.fills) == 1, what="execution")
            await barrier(ib)
            assert trade.fills[0].commissionReport.execId == ""
            real.advance(0.31)
            await wait_until(
                lambda: trade.fills[0].commissionReport.commission > 0, what="late commission"
            )
            await reconnect_and_check(srv, client_id=2)

    run(body())


def test_scheduled_outage_and_reset_from_specs(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(1100, 1102)
    ib_log.allow(DROPPED)

    async def body() -> None:
        faults = Faults()
        faults.apply("outage=09:40+120")
        faults.apply("nightly-reset=10:00")
        async with gateway(source, faults=faults) as srv, connected(srv) as ib:
            codes: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, c: codes.append(code)
            await srv.advance_to_time("09:41")
            await wait_until(lambda: codes == [1100], what="1100")
            assert srv.outage
            await srv.advance_to_time("09:43")
            await wait_until(lambda: codes == [1100, 1102], what="1102")
            await srv.advance_to_time("10:01")
            await wait_until(lambda: not ib.isConnected(), what="reset")
            await reconnect_and_check(srv)

    run(body())


def test_a_running_clock_starts_when_the_gateway_starts(source: Any) -> None:
    """Time spent before start() (constructing, compiling the fill model) is not market time:
    a replay at x3600 that waited 0.5 s before starting has not lost half an hour."""
    from momentumbot.gateway.server import GatewayConfig, GatewayServer

    async def body() -> None:
        real = ManualClock()
        srv = GatewayServer(
            source,
            GatewayConfig(start="2024-01-03", step_mode=False, speed=3600.0, port=0),
            monotonic=real,
        )
        start = srv.now_ns()
        real.advance(0.5)
        await srv.start()
        try:
            assert srv.clock.now_ns() - start < 20 * 60 * 1_000_000_000  # < 0.33 s of replay
        finally:
            await srv.stop()

    run(body())

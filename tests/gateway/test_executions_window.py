"""`executions-window=day` (the default, as IB): reqExecutions and reqCompletedOrders answer only
for the current IB day, seen through the unmodified ib_async client."""

from __future__ import annotations

from typing import Any

from ib_async import IB, ExecutionFilter, MarketOrder

from momentumbot.gateway.faults import Faults
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

DROPPED = r"Peer closed connection|reset by peer|Connection lost|Socket disconnect"


async def _history(srv: GatewayServer) -> tuple[set[str], set[int]]:
    """(execIds, permIds of completed orders) a fresh client is told."""
    async with connected(srv, client_id=0) as ib:
        fills = await ib.reqExecutionsAsync(ExecutionFilter())
        done = await ib.reqCompletedOrdersAsync(False)
        return {f.execution.execId for f in fills}, {t.order.permId for t in done}


async def _buy_and_fill(srv: GatewayServer, ib: IB, qty: int) -> Any:
    c = (await qualified(ib, "AAPL"))[0]
    trade = ib.placeOrder(c, MarketOrder("BUY", qty))
    await barrier(ib)
    await srv.advance(60)
    await wait_until(lambda: trade.orderStatus.status == "Filled", what="filled")
    return trade


def test_yesterdays_executions_are_gone_the_next_day(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with gateway(source) as srv:
            assert srv.faults.executions_window == "day", "on by default, as IB"
            async with connected(srv) as ib:
                await srv.advance_to_time("09:35")
                trade = await _buy_and_fill(srv, ib, 10)
            execs, done = await _history(srv)
            assert len(execs) == 1 and done == {trade.order.permId}, "today: reported"
            await srv.advance_to_time("23:59")
            assert len((await _history(srv))[0]) == 1, "still the same New York day"
            await srv.advance_to_time("09:31", day="2024-01-04")
            assert await _history(srv) == (set(), set()), "after New York midnight: gone"
            async with connected(srv) as ib:
                assert [p.position for p in ib.positions()] == [10], "the position stays"
                today = await _buy_and_fill(srv, ib, 5)
            execs, done = await _history(srv)
            assert len(execs) == 1 and done == {today.order.permId}
            srv.apply_fault("executions-window=all")
            execs, done = await _history(srv)
            assert len(execs) == 2 and done == {trade.order.permId, today.order.permId}
            srv.clear_faults()
            assert srv.faults.executions_window == "day"

    run(body())


def test_a_restart_or_nightly_reset_clears_the_day(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.allow(DROPPED)

    async def body() -> None:
        async with gateway(source) as srv:
            async with connected(srv) as ib:
                await srv.advance_to_time("09:35")
                await _buy_and_fill(srv, ib, 10)
                srv.restart()
                await wait_until(lambda: not ib.isConnected(), what="dropped")
            assert await _history(srv) == (set(), set()), "a restart forgets the day's executions"
            async with connected(srv) as ib:
                later = await _buy_and_fill(srv, ib, 3)
                srv.nightly_reset()
                await wait_until(lambda: not ib.isConnected(), what="dropped")
            assert await _history(srv) == (set(), set())
            srv.apply_fault("executions-window=all")
            execs, done = await _history(srv)
            assert len(execs) == 2 and later.order.permId in done

    run(body())


def test_the_window_spec() -> None:
    f = Faults()
    assert f.executions_window == "day"
    f.apply("executions-window=all")
    assert f.executions_window == "all"
    f.apply("executions-window=day")
    assert f.executions_window == "day"
    import pytest

    from momentumbot.gateway.faults import FaultSpecError

    with pytest.raises(FaultSpecError):
        f.apply("executions-window=week")

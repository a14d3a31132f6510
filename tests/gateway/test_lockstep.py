"""Lockstep replay and the hold before the open (issue 11): a running clock that waits for its
bar clients, over TCP with the unmodified ib_async client; the real clock is a ManualClock
stepped by the test where timing matters."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pandas as pd
import pytest
from ib_async import Stock

from momentumbot.cli import main
from momentumbot.gateway.clock import ManualClock
from momentumbot.gateway.desks.lockstep import SPEED_MAX, parse_speed
from momentumbot.gateway.server import GatewayConfig, GatewayServer
from tests.gateway.conftest import connected, gateway, run, wait_until

NS = 1_000_000_000


def ny(day: str, hhmm: str) -> int:
    return int(pd.Timestamp(f"{day} {hhmm}", tz="America/New_York").tz_convert("UTC").value)


OPEN = ny("2024-01-03", "09:30")


async def pump(real: ManualClock, seconds: float, step: float = 0.01) -> None:
    """Real time passes in small steps, letting the loop run between them."""
    for _ in range(round(seconds / step)):
        real.advance(step)
        await asyncio.sleep(0.002)


def test_the_running_clock_holds_before_the_open_until_a_client_subscribes_to_bars(
    source: Any,
) -> None:
    """`--hold-until-client` (on by default): at x3600 the open would come after half a real
    second; the clock stays before it while nobody streams bars, also while a client is
    connected that streams nothing, and goes on once one has subscribed."""

    async def body() -> None:
        real = ManualClock()
        async with gateway(source, real, step_mode=False, speed=3600.0) as srv:
            await pump(real, 1.0)  # an hour of market time
            assert ny("2024-01-03", "09:29") < srv.now_ns() < OPEN, "held before the open"
            assert srv.status()["lockstep"]["holding"]
            async with connected(srv) as ib:
                c = Stock("AAPL", "SMART", "USD")
                await ib.qualifyContractsAsync(c)
                await pump(real, 0.5)
                assert srv.now_ns() < OPEN, "a client without bars does not release it"
                bars = await ib.reqHistoricalDataAsync(
                    c, "", "1 D", "1 min", "TRADES", True, 2, True
                )
                n0 = len(bars)
                await pump(real, 1.0)  # quiet for half a second: released; then 30 minutes
                await wait_until(lambda: len(bars) > n0 + 5, what="bars after the open")
                assert srv.now_ns() > ny("2024-01-03", "09:40")
                assert not srv.status()["lockstep"]["holding"]

    run(body())


def test_without_the_hold_the_clock_runs_through_the_open(source: Any) -> None:
    async def body() -> None:
        real = ManualClock()
        async with gateway(
            source, real, step_mode=False, speed=3600.0, hold_until_client=False
        ) as srv:
            await pump(real, 1.0)
            assert srv.now_ns() > ny("2024-01-03", "09:50")

    run(body())


def test_lockstep_waits_at_each_minute_for_a_client_still_talking(source: Any) -> None:
    """At `speed max` the clock goes from event to event, but not past a minute's close while
    the bar client keeps sending requests; once it is quiet for the settle time it goes on.
    (Before the open it holds until the client has been quiet for half a second.)"""

    async def body() -> None:
        real = ManualClock()
        async with (
            gateway(
                source, real, step_mode=False, speed=SPEED_MAX, lockstep=True,
                lockstep_settle_seconds=0.05,
            ) as srv,
            connected(srv) as ib,
        ):  # fmt: skip
            c = Stock("AAPL", "SMART", "USD")
            await ib.qualifyContractsAsync(c)
            await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            assert srv.now_ns() < OPEN
            await pump(real, 0.6)  # quiet: released; the open is a lockstep point
            await wait_until(lambda: srv.now_ns() >= OPEN, what="the open")
            frozen = srv.now_ns()
            for _ in range(10):  # talking: 10 ms apart, under the settle time
                await ib.reqCurrentTimeAsync()
                await pump(real, 0.01)
            assert srv.now_ns() == frozen, "waits while the client talks"
            await pump(real, 0.2)
            await wait_until(lambda: srv.now_ns() > frozen, what="the clock to go on")
            assert srv.status()["mode"] == "max"
            assert srv.status()["lockstep"]["points"] >= 2

    run(body())


def test_speed_max_needs_lockstep(source: Any, tmp_path: Any) -> None:
    assert math.isinf(parse_speed("max")) and parse_speed("60") == 60.0
    for bad in ("0", "-1", "fast", "inf"):
        with pytest.raises(ValueError):
            parse_speed(bad)
    with pytest.raises(ValueError, match="lockstep"):
        GatewayServer(source, GatewayConfig(start="2024-01-03", speed=SPEED_MAX))
    srv = GatewayServer(source, GatewayConfig(start="2024-01-03", speed=60.0))
    with pytest.raises(ValueError, match="lockstep"):
        srv.set_speed(SPEED_MAX)
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import write_synthetic

    store = tmp_path / "store"
    write_synthetic(BarStore(store), ["AAPL"], start="2024-01-02", n_sessions=2, seed=7)
    assert main(["gateway", "--store", str(store), "--speed", "max"]) == 2
    assert main(["gateway", "--store", str(store), "--speed", "fast", "--lockstep"]) == 2


def test_a_client_sending_at_its_throttle_rate_must_be_quiet_for_a_whole_interval() -> None:
    """ib_async sends at most 45 requests a second and holds the rest: after a burst at that
    rate a short silence does not mean its orders are all out (100 symbols at the open)."""
    import collections
    from types import SimpleNamespace

    from momentumbot.gateway.desks.lockstep import (
        LOCKSTEP_SETTLE_SECONDS,
        THROTTLE_INTERVAL_SECONDS,
        Lockstep,
    )

    ls = Lockstep(SimpleNamespace(sessions=[]), SimpleNamespace(now=lambda: 0.0),  # type: ignore[arg-type]
                  lockstep=True, hold_until_client=False)  # fmt: skip

    def client(times: list[float]) -> Any:
        return SimpleNamespace(recent_requests=collections.deque(times), last_request=times[-1])

    assert ls._settle(client([10.0 + i * 0.1 for i in range(8)])) == LOCKSTEP_SETTLE_SECONDS
    burst = client([10.0 + i * 0.02 for i in range(45)])
    assert ls._settle(burst) == THROTTLE_INTERVAL_SECONDS
    spread = client([10.0 + i * 0.05 for i in range(45)])  # 45 over 2.2 s: not at the limit
    assert ls._settle(spread) == LOCKSTEP_SETTLE_SECONDS

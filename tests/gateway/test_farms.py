"""Data farm and connectivity faults seen through the unmodified ib_async client: the HMDS farm
down (`hmds-down`, `hmds-down-after-restore`), 2110 (`farm-broken`) and 1300 (`port-reset`)."""

from __future__ import annotations

from typing import Any

import pytest
from ib_async import IB, RequestError

from momentumbot.gateway.faults import Faults, FaultSpecError
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


def codes_of(ib: IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, c: codes.append(code)
    return codes


async def history(ib: IB, keep_up: bool = False) -> Any:
    c = (await qualified(ib, "AAPL"))[0]
    return await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, keep_up)


def test_farm_fault_specs() -> None:
    f = Faults()
    for spec in (
        "hmds-down=90", "hmds-down-after-restore=120", "farm-broken", "farm-broken=10:15+300",
        "port-reset", "port-reset=11:30",
    ):  # fmt: skip
        f.apply(spec)
    assert f.hmds_down == 90 and f.hmds_down_after_restore == 120
    assert f.farm_broken_now and f.farm_broken == [(615, 300.0)]
    assert f.port_reset_now and f.port_resets == [690]
    for bad in ("hmds-down=0", "hmds-down=x", "farm-broken=26:00", "port-reset=9"):
        with pytest.raises(FaultSpecError):
            f.apply(bad)


def test_hmds_down_fails_history_and_pauses_streams(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(162)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            ib.RaiseRequestErrors = True
            codes = codes_of(ib)
            await srv.advance_to_time("09:35")
            bars = await history(ib, keep_up=True)
            n = len(bars)
            srv.apply_fault("hmds-down=120")
            await barrier(ib)
            assert codes == [2105] and srv.hmds_down
            with pytest.raises(RequestError) as err:
                await history(ib)
            assert err.value.code == 162 and "HMDS query returned no data" in err.value.message
            await srv.advance(60)
            await barrier(ib)
            assert len(bars) == n, "keepUpToDate streams get no bars while HMDS is down"
            await srv.advance(61)
            await wait_until(lambda: 2106 in codes, what="2106")
            assert not srv.hmds_down
            assert len(await history(ib)) > n
            await srv.advance(60)
            await wait_until(lambda: len(bars) > n, what="the stream resumes")

    run(body())


def test_hmds_down_after_restore_arms_at_every_restore_and_reset(
    source: Any, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1102, 162)
    ib_log.allow(DROPPED)

    async def body() -> None:
        faults = Faults()
        faults.apply("hmds-down-after-restore=90")
        async with gateway(source, faults=faults) as srv:
            async with connected(srv) as ib:
                ib.RaiseRequestErrors = True
                codes = codes_of(ib)
                await srv.advance_to_time("09:35")
                assert len(await history(ib)) > 0, "no down time before a restore"
                srv.lose_connectivity()
                await srv.advance(60)
                srv.restore_connectivity()
                await barrier(ib)
                assert codes == [1100, 1102, 2105]
                with pytest.raises(RequestError):
                    await history(ib)
                await srv.advance(91)
                await wait_until(lambda: codes[-1] == 2106, what="2106")
                assert len(await history(ib)) > 0
            srv.nightly_reset()
            assert srv.hmds_down, "a nightly reset takes the farm down again"
            async with connected(srv, client_id=2) as ib2:
                codes2 = codes_of(ib2)
                # the greeting tells the farm is down: ib_async logs 2105 while connecting
                await srv.advance(91)
                await wait_until(lambda: codes2 == [2106], what="2106 after the reset")

    run(body())


def test_farm_broken_2110_stops_bars_until_restore(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(1102)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            codes = codes_of(ib)
            await srv.advance_to_time("09:35")
            bars = await history(ib, keep_up=True)
            n = len(bars)
            srv.apply_fault("farm-broken")
            await srv.advance(120)
            await barrier(ib)
            assert codes == [2110] and len(bars) == n, "2110 without 1100, and no bars"
            srv.restore_connectivity()
            await srv.advance(60)
            await wait_until(lambda: len(bars) == n + 1, what="bars after the restore")
            assert codes == [2110, 1102]

    run(body())


def test_port_reset_1300_drops_the_socket(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(1300)
    ib_log.allow(DROPPED)

    async def body() -> None:
        faults = Faults()
        faults.apply("port-reset=09:45")
        async with gateway(source, faults=faults) as srv:
            async with connected(srv) as ib:
                await srv.advance_to_time("09:46")
                await wait_until(lambda: not ib.isConnected(), what="the dropped socket")
            assert srv.listening
            async with connected(srv) as again:
                assert await again.reqCurrentTimeAsync()

    run(body())

"""`exec-time-format=zoned|utc-dash|naive-local`: execution and completed-order times as IB
writes them at server version 178; `exec-correction`: an execution followed by the correction
that replaces it. Seen on the wire by the unmodified ib_async client."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from ib_async import IB, MarketOrder

from momentumbot.gateway.exec_time import format_exec_time, tws_zone
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

NY = tws_zone("America/New_York")


def _ns(text: str) -> int:
    return pd.Timestamp(text).value


def test_the_three_formats_across_daylight_saving() -> None:
    winter, summer = _ns("2024-01-03 14:35:00+00:00"), _ns("2024-07-03 13:35:00+00:00")
    assert format_exec_time(winter, "utc-dash", NY) == "20240103-14:35:00"
    assert format_exec_time(winter, "naive-local", NY) == "20240103  09:35:00"
    assert format_exec_time(summer, "naive-local", NY) == "20240703  09:35:00"
    assert format_exec_time(winter, "zoned", NY) == "20240103 09:35:00 America/New_York"
    london = tws_zone("Europe/London")
    assert format_exec_time(summer, "naive-local", london) == "20240703  14:35:00"
    with pytest.raises(ValueError, match="unknown time zone"):
        tws_zone("Mars/Olympus")


def test_the_spec_switches_the_format_and_clear_restores_the_default() -> None:
    f = Faults()
    assert f.exec_time_format == "utc-dash"  # as a live account at 178
    f.apply("exec-time-format=naive-local")
    assert f.exec_time_format == "naive-local"
    with pytest.raises(FaultSpecError):
        f.apply("exec-time-format=local")
    f.clear()
    assert f.exec_time_format == "utc-dash"


def _raw(ib: IB, msg_id: int, into: list[list[str]]) -> None:
    handlers = ib.client.decoder.handlers
    decode = handlers[msg_id]

    def keep(fields: list[str]) -> None:
        into.append(list(fields))
        decode(fields)

    handlers[msg_id] = keep


@pytest.mark.parametrize(
    ("fmt", "zone", "want"),
    [
        ("utc-dash", "America/New_York", "20240103-14:35:00"),
        ("naive-local", "America/New_York", "20240103  09:35:00"),
        ("naive-local", "America/Chicago", "20240103  08:35:00"),
        ("zoned", "America/New_York", "20240103 09:35:00 America/New_York"),
    ],
)
def test_exec_details_and_completed_orders_carry_the_format(
    fmt: str, zone: str, want: str, source: Any, ib_log: IbLogGuard
) -> None:
    async def body() -> None:
        async with gateway(source, tws_timezone=zone) as srv, connected(srv) as ib:
            srv.apply_fault(f"exec-time-format={fmt}")  # as the control port does
            execs: list[list[str]] = []
            completed: list[list[str]] = []
            _raw(ib, 11, execs)
            _raw(ib, 101, completed)
            (c,) = await qualified(ib, "AAPL")
            await srv.advance_to_time("09:35")
            trade = ib.placeOrder(c, MarketOrder("BUY", 10))
            await barrier(ib)
            await srv.advance(60)
            await wait_until(lambda: len(trade.fills) == 1, what="the execution")
            assert execs[0][15] == want
            await ib.reqCompletedOrdersAsync(False)
            assert want in completed[0]

    run(body())


def test_exec_correction_replaces_the_execution(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            srv.apply_fault("exec-correction")
            (c,) = await qualified(ib, "AAPL")
            await srv.advance_to_time("09:35")
            trade = ib.placeOrder(c, MarketOrder("BUY", 10))
            await barrier(ib)
            await srv.advance(60)
            await wait_until(lambda: len(trade.fills) == 2, what="the execution and correction")
            first, second = (f.execution for f in trade.fills)
            assert first.execId.endswith(".01") and second.execId == first.execId[:-3] + ".02"
            assert (second.shares, second.price, second.time) == (10, first.price, first.time)
            await wait_until(lambda: trade.fills[1].commissionReport.commission > 0, what="comm")
            # ib_async books both: a client that does not know corrections sees 20 shares
            assert sum(f.execution.shares for f in trade.fills) == 20
            fills = await ib.reqExecutionsAsync()
            assert [f.execution.execId for f in fills] == [second.execId]  # it replaced it
            assert srv.broker.accounts["DU0000001"].position("AAPL").qty == 10

    run(body())


def test_exec_correction_spec() -> None:
    f = Faults()
    f.apply("exec-correction")
    assert f.exec_correction_every == 1
    f.apply("exec-correction=3")
    assert f.exec_correction_every == 3
    with pytest.raises(FaultSpecError):
        f.apply("exec-correction=x")

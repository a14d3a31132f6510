"""IB's order errors, classified in the IB adapter: notes keep the order, a refused modify keeps
the original, a reject of the order ends it, and anything ambiguous ("Inactive", 451, codes not
listed) is confirmed with IB's open and completed orders before the trader hears it ended."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from ib_async import Order, OrderStatus, Stock, Trade, TradeLogEntry

from momentumbot.execution.ib_broker import BrokerSettings, IbBroker
from momentumbot.execution.ib_order_errors import ErrorClass, classify, confirm_outcome
from momentumbot.execution.ib_reports import order_report
from tests.execution.test_ib_events import Recorder

REF = "exit:r:3"


@pytest.mark.parametrize(
    ("code", "acknowledged", "modifying", "expected"),
    [
        (10349, False, False, ErrorClass.NOTE),  # TIF set to DAY by a preset
        (10349, True, False, ErrorClass.NOTE),
        (399, True, False, ErrorClass.NOTE),
        (404, True, False, ErrorClass.NOTE),  # held for a locate
        (10311, False, False, ErrorClass.NOTE),  # directly routed
        (202, True, False, ErrorClass.NOTE),  # the cancel confirmed: its status follows
        (201, True, True, ErrorClass.MODIFY_FAILED),
        (105, True, True, ErrorClass.MODIFY_FAILED),
        (329, True, True, ErrorClass.MODIFY_FAILED),
        (201, False, False, ErrorClass.REJECT),
        (200, False, False, ErrorClass.REJECT),
        (110, False, False, ErrorClass.REJECT),  # a new order off the tick
        (110, True, False, ErrorClass.NOTE),
        (451, False, False, ErrorClass.CONFIRM),  # precautionary value limit
        (105, True, False, ErrorClass.CONFIRM),
        (12345, True, False, ErrorClass.CONFIRM),
        (2104, True, False, ErrorClass.INFO),
    ],
)
def test_classify(code: int, acknowledged: bool, modifying: bool, expected: ErrorClass) -> None:
    assert classify(code, acknowledged=acknowledged, modifying=modifying) is expected


def test_confirm_outcome() -> None:
    assert confirm_outcome("Submitted", None) is ErrorClass.NOTE
    assert confirm_outcome("Inactive", None) is ErrorClass.NOTE  # held
    assert confirm_outcome(None, "Cancelled") is ErrorClass.REJECT
    assert confirm_outcome(None, "Filled") is ErrorClass.NOTE  # its executions tell the rest
    assert confirm_outcome(None, None) is ErrorClass.REJECT  # IB never had it


def trade(status: str, *, error: int = 0, perm_id: int = 900) -> Trade:
    order = Order(orderId=5, permId=perm_id, orderRef=REF, action="SELL", totalQuantity=10)
    t = Trade(Stock("AAA"), order, OrderStatus(status=status, permId=perm_id))
    if error:
        t.log.append(TradeLogEntry(dt.datetime.now(dt.UTC), status, f"Error {error}", error))
    return t


def test_inactive_is_cancelled_among_completed_orders_and_working_among_open_ones() -> None:
    assert order_report(trade("Inactive")).status == "cancelled"
    assert order_report(trade("Inactive"), inactive="working").status == "working"


def test_ib_async_cancelling_locally_on_a_warning_does_not_end_the_order() -> None:
    rec = Recorder()
    broker = IbBroker(BrokerSettings(), rec)
    ib = broker.ib
    ib.orderStatusEvent.emit(trade("Submitted"))
    # ib_async marks the order Cancelled itself before the error event comes
    ib.orderStatusEvent.emit(trade("Cancelled", error=10349))
    ib.errorEvent.emit(5, 10349, "Order TIF was set to DAY based on order preset.", None)
    assert rec.events == [("status", REF, "working"), ("note", REF, "ib_10349")]
    assert not broker._done(trade("Cancelled", error=10349)), "it can still be cancelled"
    ib.orderStatusEvent.emit(trade("Filled"))
    assert rec.events[-1] == ("status", REF, "filled")


def test_a_refused_modify_keeps_the_original() -> None:
    rec = Recorder()
    broker = IbBroker(BrokerSettings(), rec)
    broker.ib.orderStatusEvent.emit(trade("Submitted"))
    broker.errors.modifying.add(REF)  # as modify_to_market leaves it
    broker.ib.orderStatusEvent.emit(trade("Cancelled", error=201))
    broker.ib.errorEvent.emit(5, 201, "Order rejected - reason:cannot be modified", None)
    assert rec.events[1:] == [
        ("modify_failed", REF, "error 201: Order rejected - reason:cannot be modified")
    ]


def _answers(broker: IbBroker, open_trades: list[Trade], completed: list[Trade]) -> None:
    async def all_open() -> list[Trade]:
        return open_trades

    async def done(api_only: bool) -> list[Trade]:
        return completed

    broker.ib.reqAllOpenOrdersAsync = all_open
    broker.ib.reqCompletedOrdersAsync = done


async def _settle(broker: IbBroker) -> None:
    while broker.errors.tasks:
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("open_status", "completed_status", "expected"),
    [
        ("Inactive", None, ("note", REF, "ib_inactive")),  # held: keeps working
        (None, "Cancelled", ("rejected", REF, "Inactive at IB")),
    ],
)
def test_inactive_is_confirmed_with_ib(
    open_status: str | None, completed_status: str | None, expected: tuple[Any, ...]
) -> None:
    async def body() -> None:
        rec = Recorder()
        broker = IbBroker(BrokerSettings(), rec)
        _answers(
            broker,
            [trade(open_status)] if open_status else [],
            [trade(completed_status)] if completed_status else [],
        )
        broker.ib.orderStatusEvent.emit(trade("Submitted"))
        broker.ib.orderStatusEvent.emit(trade("Inactive"))
        await _settle(broker)
        assert rec.events == [("status", REF, "working"), expected]

    asyncio.run(body())


def test_an_ambiguous_error_ends_the_order_only_when_ib_has_not_got_it() -> None:
    async def body() -> None:
        rec = Recorder()
        broker = IbBroker(BrokerSettings(), rec)
        _answers(broker, [trade("Submitted")], [])
        broker.ib.orderStatusEvent.emit(trade("Submitted"))
        broker.ib.errorEvent.emit(5, 451, "The order value exceeds the Total Value Limit", None)
        await _settle(broker)
        assert rec.events[-1][:2] == ("note", REF), "IB still has it working"
        _answers(broker, [], [])
        broker.ib.errorEvent.emit(5, 451, "The order value exceeds the Total Value Limit", None)
        await _settle(broker)
        assert rec.events[-1] == (
            "rejected",
            REF,
            "error 451: The order value exceeds the Total Value Limit",
        )

    asyncio.run(body())

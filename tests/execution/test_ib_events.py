"""IB's vocabulary stays in the IB adapter: its error codes come out as typed listener events
(emitted here through ib_async's own events, no connection needed)."""

from __future__ import annotations

from typing import Any

from ib_async import Order, OrderStatus, Stock, Trade

from momentumbot.execution.broker_protocol import BrokerListener
from momentumbot.execution.ib_broker import (
    BrokerSettings,
    IbBroker,
    account_is_paper,
    port_is_live,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_stream_lost(self, symbol: str, why: str, *, no_market_data: bool = False) -> None:
        self.events.append(("stream lost", symbol, why, no_market_data))

    def on_execution(self, report: Any) -> None:
        self.events.append(("execution", report.exec_id))

    def on_commission(self, exec_id: str, commission_micro: int) -> None:
        self.events.append(("commission", exec_id, commission_micro))

    def on_order_status(self, report: Any) -> None:
        self.events.append(("status", report.order_ref, report.status))

    def on_order_rejected(self, order_ref: str, why: str) -> None:
        self.events.append(("rejected", order_ref, why))

    def on_order_note(self, order_ref: str, event: str, text: str) -> None:
        self.events.append(("note", order_ref, event))

    def on_modify_failed(self, order_ref: str, why: str) -> None:
        self.events.append(("modify_failed", order_ref, why))

    def on_connectivity_lost(self) -> None:
        self.events.append(("lost",))

    def on_connectivity_restored(self, *, data_lost: bool) -> None:
        self.events.append(("restored", data_lost))

    def on_disconnected(self) -> None:
        self.events.append(("disconnected",))


def test_error_codes_become_typed_events() -> None:
    rec = Recorder()
    listener: BrokerListener = rec
    broker = IbBroker(BrokerSettings(), listener)
    ib = broker.ib
    order = Order(orderId=5, orderRef="enter:r:0", action="BUY", totalQuantity=10)
    ib.orderStatusEvent.emit(Trade(Stock("AAA"), order, OrderStatus(status="Submitted")))
    ib.errorEvent.emit(5, 202, "Order Canceled - reason:", None)  # does not end it
    ib.errorEvent.emit(5, 201, "Order rejected - reason: no shares", None)
    ib.errorEvent.emit(5, 2104, "Market data farm connection is OK", None)  # information
    ib.errorEvent.emit(77, 201, "an order of another program", None)  # not ours
    ib.errorEvent.emit(-1, 1100, "Connectivity between IB and TWS has been lost", None)
    ib.errorEvent.emit(-1, 1101, "Connectivity restored - data lost", None)
    ib.errorEvent.emit(-1, 1102, "Connectivity restored - data maintained", None)
    assert rec.events == [
        ("status", "enter:r:0", "working"),
        ("note", "enter:r:0", "ib_202"),
        ("rejected", "enter:r:0", "error 201: Order rejected - reason: no shares"),
        ("lost",),
        ("restored", True),
        ("restored", False),
    ]


def test_paper_and_live_ports_and_accounts() -> None:
    assert [port_is_live(p) for p in (7497, 4002, 7496, 4001)] == [False, False, True, True]
    assert account_is_paper("DU1234567") and not account_is_paper("U1234567")
    assert IbBroker(BrokerSettings(), Recorder()).account_is_paper("du1")

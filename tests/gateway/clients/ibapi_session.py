"""A scripted session of IB's unmodified official `ibapi` 10.x (the ibapi-latest distribution)
against the gateway, run under .venv-clients/bin/python by tests/gateway/test_other_clients.py:
history, a keepUpToDate stream, a what-if, a market order filled with its commission report, a
limit order cancelled. Prints {"event": "subscribed"} once streaming (the test then runs the
clock) and a last JSON line with what it received. ibapi reports a message it cannot decode as
error 505 (BadMessage) or logs it ("diff len fields and params"); both land in the output."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

HIST, STREAM = 1, 2


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def num(v: Any) -> float:
    return float(v) if isinstance(v, Decimal | int | float) else float(str(v))


class App(EWrapper, EClient):
    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.lock = threading.Lock()
        self.next_id = 0
        self.error_codes: list[int] = []
        self.hist: list[list[Any]] = []
        self.hist_done = False
        self.stream_initial: list[list[Any]] = []
        self.stream_done = False
        self.updates: list[list[Any]] = []
        self.status: dict[int, dict[str, Any]] = {}
        self.open_orders: dict[int, Any] = {}
        self.execs: dict[str, dict[str, Any]] = {}
        self.reports: dict[str, float] = {}

    # ---- wrapper
    def nextValidId(self, orderId: int) -> None:
        self.next_id = orderId

    def error(
        self,
        reqId: int,
        errorTime: int,
        errorCode: int,
        errorString: str,
        advancedOrderRejectJson: str = "",
    ) -> None:
        self.error_codes.append(errorCode)

    def historicalData(self, reqId: int, bar: Any) -> None:
        row = [int(bar.date), bar.open, bar.high, bar.low, bar.close, num(bar.volume)]
        (self.hist if reqId == HIST else self.stream_initial).append(row)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        if reqId == HIST:
            self.hist_done = True
        else:
            self.stream_done = True

    def historicalDataUpdate(self, reqId: int, bar: Any) -> None:
        self.updates.append(
            [int(bar.date), bar.open, bar.high, bar.low, bar.close, num(bar.volume)]
        )

    def openOrder(self, orderId: int, contract: Contract, order: Order, orderState: Any) -> None:
        self.open_orders[orderId] = (order, orderState)

    def orderStatus(self, orderId: int, status: str, filled: Any, remaining: Any,
                    avgFillPrice: float, *rest: Any) -> None:  # fmt: skip
        self.status[orderId] = {"status": status, "filled": num(filled), "avg_price": avgFillPrice}

    def execDetails(self, reqId: int, contract: Contract, execution: Any) -> None:
        self.execs[execution.execId] = {
            "order_id": execution.orderId,
            "shares": num(execution.shares),
            "order_ref": execution.orderRef,
        }

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:
        r = commissionAndFeesReport
        self.reports[r.execId] = r.commissionAndFees


def until(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stock() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
    return c


def order(action: str, qty: int, kind: str, ref: str, lmt: float | None = None) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.orderRef = action, Decimal(qty), kind, ref
    if lmt is not None:
        o.lmtPrice = lmt
    return o


def session(app: App, port: int, out: dict[str, Any]) -> None:
    app.connect("127.0.0.1", port, clientId=8)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    until(lambda: app.next_id > 0, "nextValidId")
    out["server_version"] = app.serverVersion()
    c = stock()
    app.reqHistoricalData(HIST, c, "", "1 D", "1 min", "TRADES", 1, 2, False, [])
    until(lambda: app.hist_done, "history")
    out["history"] = app.hist
    app.reqHistoricalData(STREAM, c, "", "1 D", "1 min", "TRADES", 1, 2, True, [])
    until(lambda: app.stream_done, "the stream's initial bars")
    print(json.dumps({"event": "subscribed"}), flush=True)
    last = app.stream_initial[-1][0]
    # the first streamed minute, final once a later one has begun (a forming bar is revised)
    until(lambda: len({u[0] for u in app.updates if u[0] > last}) >= 2, "two streamed bars")
    first = min(u[0] for u in app.updates if u[0] > last)
    out["streamed"] = [u for u in app.updates if u[0] == first][-1]
    what_if_id = app.next_id
    probe = order("BUY", 10, "MKT", "api-0")
    probe.whatIf = True
    app.placeOrder(what_if_id, c, probe)
    until(lambda: what_if_id in app.open_orders, "the what-if answer")
    state = app.open_orders[what_if_id][1]
    out["what_if"] = {
        "commission": state.commissionAndFees,
        "init_margin_change": float(state.initMarginChange),
    }
    buy_id = what_if_id + 1
    app.placeOrder(buy_id, c, order("BUY", 10, "MKT", "api-1"))
    until(lambda: app.status.get(buy_id, {}).get("status") == "Filled", "the fill")
    mine = [e for e, x in app.execs.items() if x["order_id"] == buy_id]
    until(lambda: all(e in app.reports for e in mine), "commission reports")
    out["fill"] = {
        **app.status[buy_id],
        "exec_ids": mine,
        "shares": sum(app.execs[e]["shares"] for e in mine),
        "report_exec_ids": [e for e in mine if e in app.reports],
        "commission": sum(app.reports[e] for e in mine),
        "order_ref": app.execs[mine[0]]["order_ref"],
    }
    rest_id = buy_id + 1
    app.placeOrder(rest_id, c, order("BUY", 5, "LMT", "api-2", 1.0))
    until(lambda: app.status.get(rest_id, {}).get("status") == "Submitted", "the limit order")
    app.cancelOrder(rest_id, OrderCancel())
    until(lambda: app.status.get(rest_id, {}).get("status") == "Cancelled", "the cancel")
    out["cancel"] = {"status": app.status[rest_id]["status"]}
    app.cancelHistoricalData(STREAM)
    time.sleep(0.2)
    app.disconnect()
    thread.join(5)


def main() -> int:
    port = int(sys.argv[1])
    errors = Errors()
    logging.getLogger().addHandler(errors)
    out: dict[str, Any] = {"event": "done", "client": "ibapi"}
    app = App()
    try:
        session(app, port, out)
    except Exception as exc:
        out["failure"] = f"{type(exc).__name__}: {exc}"
    out["error_codes"] = app.error_codes
    out["log_errors"] = errors.lines
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

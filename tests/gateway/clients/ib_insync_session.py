"""A scripted session of the unmodified ib_insync 0.9.86 against the gateway, run under
.venv-clients/bin/python by tests/gateway/test_other_clients.py: history, a keepUpToDate stream,
a what-if, a market order filled with its commission report, a limit order cancelled. Prints
{"event": "subscribed"} once streaming (the test then runs the clock) and a last JSON line with
what it received; every ERROR the client logged is in "log_errors"."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from ib_insync import IB, LimitOrder, MarketOrder, Stock


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def bar(b: Any) -> list[Any]:
    return [int(b.date.timestamp()), b.open, b.high, b.low, b.close, b.volume]


async def until(pred: Any, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def session(port: int, out: dict[str, Any]) -> None:
    ib = IB()
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    out["error_codes"] = codes
    await ib.connectAsync("127.0.0.1", port, clientId=7, timeout=10)
    out["server_version"] = ib.client.serverVersion()
    (c,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    out["con_id"] = c.conId
    hist = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, formatDate=2)
    out["history"] = [bar(b) for b in hist]
    stream = await ib.reqHistoricalDataAsync(
        c, "", "1 D", "1 min", "TRADES", True, formatDate=2, keepUpToDate=True
    )
    n0 = len(stream)
    print(json.dumps({"event": "subscribed"}), flush=True)
    # the first streamed minute, final once a later one has begun (a forming bar is revised)
    await until(lambda: len(stream) >= n0 + 2, "two streamed bars")
    out["streamed"] = bar(stream[n0])
    state = await ib.whatIfOrderAsync(c, MarketOrder("BUY", 10))
    out["what_if"] = {
        "commission": state.commission,
        "init_margin_change": float(state.initMarginChange),
    }
    trade = ib.placeOrder(c, MarketOrder("BUY", 10, orderRef="ins-1"))
    await until(lambda: trade.orderStatus.status == "Filled", "the fill")
    await until(lambda: all(f.commissionReport.execId for f in trade.fills), "commission")
    out["fill"] = {
        "status": trade.orderStatus.status,
        "filled": trade.orderStatus.filled,
        "avg_price": trade.orderStatus.avgFillPrice,
        "exec_ids": [f.execution.execId for f in trade.fills],
        "shares": sum(f.execution.shares for f in trade.fills),
        "report_exec_ids": [f.commissionReport.execId for f in trade.fills],
        "commission": sum(f.commissionReport.commission for f in trade.fills),
        "order_ref": trade.order.orderRef,
    }
    resting = ib.placeOrder(c, LimitOrder("BUY", 5, 1.0, orderRef="ins-2"))
    await until(lambda: resting.orderStatus.status == "Submitted", "the limit order")
    ib.cancelOrder(resting.order)
    await until(lambda: resting.orderStatus.status == "Cancelled", "the cancel")
    out["cancel"] = {"status": resting.orderStatus.status}
    ib.cancelHistoricalData(stream)
    await asyncio.sleep(0.2)
    ib.disconnect()


def main() -> int:
    port = int(sys.argv[1])
    errors = Errors()
    logging.getLogger().addHandler(errors)
    out: dict[str, Any] = {"event": "done", "client": "ib_insync"}
    try:
        asyncio.run(asyncio.wait_for(session(port, out), 90))
    except Exception as exc:
        out["failure"] = f"{type(exc).__name__}: {exc}"
    out["log_errors"] = errors.lines
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

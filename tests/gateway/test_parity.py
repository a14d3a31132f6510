"""A replayed session through ib_async: the gateway's fills equal, order for order, those of the
reference loop over execution.matching.match_in_bar for the same orders on the same bars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from ib_async import MarketOrder

from momentumbot.config.schema import ExecutionConfig
from momentumbot.data.synthetic import synthetic_sessions
from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import BUY, SELL, cost_params
from tests.gateway.conftest import (
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)
from tests.gateway.reference import RefOrder, reference_fills

P = cost_params(ExecutionConfig())

# (New York time, symbol, side, shares): big orders meet the volume cap, the SPY buy meets the
# cash clamp, the last MSFT sell is larger than the position and expires unfilled at the close
SCRIPT = [
    ("09:31", "AAPL", BUY, 3000),
    ("09:31", "MSFT", BUY, 500),
    ("09:44", "AAPL", SELL, 1000),
    ("09:44", "SPY", BUY, 4000),
    ("10:02", "MSFT", SELL, 200),
    ("10:02", "AAPL", BUY, 100),
    ("11:17", "MSFT", SELL, 600),
    ("15:30", "AAPL", SELL, 2100),
]


def test_replayed_session_matches_the_reference(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard, tmp_path: Path
) -> None:
    record = tmp_path / "gateway.jsonl"

    async def body() -> tuple[list[Any], list[Any], float, dict[str, float]]:
        async with gateway(source, record_path=str(record)) as srv, connected(srv) as ib:
            contracts = {
                s: c
                for s, c in zip(
                    ("AAPL", "MSFT", "SPY"),
                    await qualified(ib, "AAPL", "MSFT", "SPY"),
                    strict=True,
                )
            }
            placed: list[RefOrder] = []
            for hhmm, sym, side, qty in SCRIPT:
                await srv.advance_to_time(hhmm)
                trade = ib.placeOrder(
                    contracts[sym], MarketOrder("BUY" if side == BUY else "SELL", qty)
                )
                await barrier(ib)
                placed.append(RefOrder(trade.order.orderId, sym, side, qty, srv.now_ns()))
            await srv.advance_to_time("16:01")
            await barrier(ib)
            await wait_until(
                lambda: (
                    len(ib.fills()) == sum(1 for e in srv.record.events if e["event"] == "fill")
                    and all(f.commissionReport.execId for f in ib.fills())
                ),
                what="all fills and commissions",
            )
            fills = sorted(ib.fills(), key=lambda f: f.execution.execId)
            cash = float(next(v.value for v in ib.accountValues() if v.tag == "TotalCashValue"))
            positions = {p.contract.symbol: p.position for p in ib.positions()}
            return placed, fills, cash, positions

    placed, ib_fills, ib_cash, ib_positions = run(body())
    sessions = synthetic_sessions("2024-01-03", 1)
    want, want_cash, want_pos = reference_fills(placed, bar_frames, sessions, 100_000 * MICRO, P)
    assert len(want) > len(SCRIPT), "the volume cap should split orders"

    # what the gateway recorded
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    got = [
        (e["order_id"], e["bar_ns"], e["qty"], e["price"], round(float(e["commission"]) * MICRO))
        for e in recorded
        if e["event"] == "fill"
    ]
    assert got == [(f.order_id, f.bar_ns, f.qty, f.price, f.commission_micro) for f in want]

    # what ib_async saw
    seen = sorted(
        (
            f.execution.orderId,
            int(pd.Timestamp(f.execution.time).value),
            int(f.execution.shares),
            f.execution.price,
            round(f.commissionReport.commission * MICRO),
        )
        for f in ib_fills
    )
    assert seen == sorted((f.order_id, f.bar_ns, f.qty, f.price, f.commission_micro) for f in want)
    assert round(ib_cash * MICRO) == want_cash
    assert ib_positions == {s: float(q) for s, q in want_pos.items() if q}

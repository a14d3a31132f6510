"""The risk gate: what happens to a minute's new orders before they are sent.

Each adjustment is `[order id, quantity, why]`: quantity 0 vetoes the order, a smaller one
cuts it. Orders decided while the bot was catching up after a fresh start are vetoed; in a
session that closed while the bot was down only sells go out; the rest pass the pre-trade
limits of `risk.limits`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from momentumbot.engine import kernel as k
from momentumbot.engine.live import LiveEngine
from momentumbot.risk.limits import RiskLimits, pre_trade

log = logging.getLogger("momentumbot.trade")

SIDE_NAME = {1: "BUY", -1: "SELL"}


def gate(
    e: LiveEngine,
    new_orders: Sequence[int],
    *,
    catchup: bool,
    closed_session: bool,
    limits: RiskLimits,
    blocked: np.ndarray,
    halted: str,
) -> list[list[Any]]:
    """The adjustments to this minute's new working orders, by order id."""
    o = e.orders
    new_working = [oid for oid in new_orders if o.status[oid] == k.S_WORKING]
    if not new_working:
        return []
    if catchup:
        return [[oid, 0, "decided before the bot started"] for oid in new_working]
    stale: list[list[Any]] = []
    if closed_session:
        late = [oid for oid in new_working if o.side[oid] > 0]
        new_working = [oid for oid in new_working if o.side[oid] < 0]
        stale = [
            [oid, 0, "decided in a session that closed while the bot was down"] for oid in late
        ]
        if not new_working:
            return stale
    adj = pre_trade(
        new_working,
        symbol=o.symbol,
        side=o.side,
        quantity=o.quantity,
        filled=o.filled,
        working_ids=e.working_orders(),
        position=e.st.position,
        price=e.st.last_close,
        limits=limits,
        blocked=blocked,
        halted=halted,
    )
    for a in adj:
        log.warning(
            "risk: order %d %s %s cut to %d (%s)",
            a.oid, SIDE_NAME[int(o.side[a.oid])], e.symbols[int(o.symbol[a.oid])], a.quantity, a.why,
        )  # fmt: skip
    return sorted(stale + [[a.oid, a.quantity, a.why] for a in adj])

"""The risk gate: what happens to a minute's new orders before they are sent.

Each adjustment is `[order id, quantity, why]`: quantity 0 vetoes the order, a smaller one
cuts it. The [risk] limits (position value, gross exposure, orders per minute) are applied by
the minute step itself (`risk.checks`, as in a backtest); the gate reports those cuts, so the
journal says why, and adds what only a trading run knows: orders decided while the bot was
catching up after a fresh start are vetoed; buys decided while stepping a backlog of missed
minutes (after an outage, a reset, a restart) are vetoed, only the latest minute's go out; in a
session that closed while the bot was down only sells go out; while the run is paused (the
dashboard's pause) buys are refused; buys of a symbol without live market data are refused;
after a daily-loss halt every order is refused until `trade --rearm`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from momentumbot.domain.orders import OrderStatus, Side
from momentumbot.engine import kernel as k
from momentumbot.engine.live import LiveEngine
from momentumbot.risk.checks import LIMIT_NAMES, RISK_DAILY_LOSS, RISK_NONE, RISK_SETTLED_CASH
from momentumbot.risk.limits import RiskLimits, pre_trade

log = logging.getLogger("momentumbot.trade")


def limit_why(e: LiveEngine, oid: int) -> str:
    """The limit that cut or refused order `oid` in the minute step, in pre_trade's words."""
    code = int(e.orders.risk[oid])
    if code in (RISK_NONE, RISK_DAILY_LOSS):
        return ""
    if code == RISK_SETTLED_CASH:
        return "settled cash (settlement T+1: today's sale proceeds settle at the next session)"
    name = LIMIT_NAMES[code]
    value = getattr(e.kp, name)
    return f"{name} {value:g}"


def gate(
    e: LiveEngine,
    new_orders: Sequence[int],
    *,
    catchup: bool,
    closed_session: bool,
    blocked: np.ndarray,
    halted: str,
    paused: str = "",
    backlog: bool = False,
    buy_room: tuple[int, str] = (-1, ""),
) -> list[list[Any]]:
    """The adjustments to this minute's new orders, by order id (the step's own limit cuts
    included, so the journal says why; applying them again changes nothing)."""
    o = e.orders
    adjust: dict[int, list[Any]] = {}
    logged: list[int] = []
    for oid in new_orders:
        why = limit_why(e, oid)
        if why:
            qty = 0 if o.status[oid] == k.S_SKIPPED else int(o.quantity[oid])
            adjust[oid] = [oid, qty, why]
            logged.append(oid)
    new_working = [oid for oid in new_orders if o.status[oid] == OrderStatus.WORKING]
    if catchup:
        for oid in new_working:
            adjust[oid] = [oid, 0, "decided before the bot started"]
        new_working = []
    buys_out = ""
    if backlog:
        buys_out = (
            "decided while catching up on missed minutes (only the latest minute's buys go out)"
        )
    if closed_session:
        buys_out = "decided in a session that closed while the bot was down"
    if buys_out:
        for oid in new_working:
            if o.side[oid] > 0:
                adjust[oid] = [oid, 0, buys_out]
        new_working = [oid for oid in new_working if o.side[oid] < 0]
    if paused:  # no new entries; exits, rebalancing sells and the flatten still go
        for oid in new_working:
            if o.side[oid] > 0:
                adjust[oid] = [oid, 0, f"paused: {paused}"]
        new_working = [oid for oid in new_working if o.side[oid] < 0]
    room, room_why = buy_room
    if room >= 0:  # only `room` new buys (day trades left): the later ones wait
        for oid in [oid for oid in new_working if o.side[oid] > 0][room:]:
            adjust[oid] = [oid, 0, room_why]
            logged.append(oid)
            new_working.remove(oid)
    if new_working:
        # no limits here: the step applied the configured ones; only the live-only vetoes
        for a in pre_trade(
            new_working, symbol=o.symbol, side=o.side, quantity=o.quantity, filled=o.filled,
            working_ids=e.working_orders(), position=e.st.position, price=e.st.last_close,
            limits=RiskLimits(), blocked=blocked, halted=halted,
        ):  # fmt: skip
            adjust[a.oid] = [a.oid, a.quantity, a.why]
            logged.append(a.oid)
    for oid in dict.fromkeys(logged):  # each order once, with its final adjustment
        _, qty, why = adjust[oid]
        log.warning(
            "risk: order %d %s %s cut to %d (%s)",
            oid, Side(int(o.side[oid])).label, e.symbols[int(o.symbol[oid])], qty, why,
        )  # fmt: skip
    return sorted(adjust.values())

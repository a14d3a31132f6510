"""A fatal exit (reconciliation mismatch, a failed task, a crash): the run's working orders are
cancelled at IB, unless `[broker] keep_orders_on_fatal`, so nothing keeps trading unmanaged;
then what remains at IB (orders still working, positions in the run's symbols) is listed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection

from momentumbot.domain.orders import Side
from momentumbot.execution.broker_protocol import Broker, BrokerSnapshot, OrderReport
from momentumbot.journal.reconcile import parse_ref

log = logging.getLogger("momentumbot.trade")

CONFIRM_SECONDS = 10.0  # how long the cancels may take to be confirmed by IB
POLL_SECONDS = 0.2


def _ours(snap: BrokerSnapshot, run_id: str) -> list[OrderReport]:
    out = []
    for o in snap.open_orders:
        parsed = parse_ref(o.order_ref)
        if parsed is not None and parsed[0] == run_id:
            out.append(o)
    return out


def _describe(o: OrderReport) -> str:
    return (
        f"order {o.order_ref} ({Side(o.side).label} {o.quantity - o.filled} {o.symbol}, IB order "
        f"{o.ib_order_id}, client {o.client_id}) is still working at IB: cancel it in TWS "
        "(Activity > Orders) if you do not want it"
    )


async def cancel_working_orders(
    broker: Broker,
    run_id: str,
    symbols: Collection[str],
    *,
    keep: bool,
    timeout: float = CONFIRM_SECONDS,
) -> list[str]:
    """Cancel this run's working orders (unless `keep`) and wait for IB to confirm; the lines
    saying what remains at IB (empty: nothing of this run is working and no position is left)."""
    if not broker.connected:
        return [
            "not connected to IB: this run's orders may still be working there; check TWS "
            "(Activity > Orders) and cancel them"
        ]
    try:
        snap = await asyncio.wait_for(broker.snapshot(), timeout)
        ours = _ours(snap, run_id)
        if ours and not keep:
            broker.adopt_open_orders()
            asked = set()
            for o in ours:
                log.warning("fatal exit: cancelling %s at IB", o.order_ref)
                if broker.cancel(o.order_ref):
                    asked.add(o.order_ref)
                else:
                    log.warning("fatal exit: %s cannot be cancelled from here", o.order_ref)
            end = time.monotonic() + timeout
            while asked & {o.order_ref for o in ours} and time.monotonic() < end:
                await asyncio.sleep(POLL_SECONDS)
                snap = await asyncio.wait_for(broker.snapshot(), timeout)
                ours = _ours(snap, run_id)
    except Exception as exc:  # the exit goes on; the user is told to look
        return [
            f"could not cancel this run's orders at IB ({exc}); check TWS (Activity > Orders) "
            "and cancel them"
        ]
    lines = [_describe(o) for o in ours]
    if keep and ours:
        lines.insert(0, "[broker] keep_orders_on_fatal = true: the run's orders stay at IB")
    for sym, qty in sorted(snap.positions.items()):
        if sym in symbols and qty:
            lines.append(
                f"position {qty} {sym} remains at IB: the run's journal holds it (the same "
                "command resumes the run and manages it once the cause is fixed)"
            )
    return lines

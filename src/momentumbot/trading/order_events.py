"""Broker events about orders, into the journal and the engine: executions and commission
reports (handed to the fill book), status changes, rejections (a sell goes to `sell_retry`),
refused modifications and notes (the order keeps working). Events for orders
that are not this run's are ignored (an execution for a traded symbol is logged)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from momentumbot.domain.orders import OrderStatus
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import ExecReport, OrderReport
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.journal.reconcile import parse_ref
from momentumbot.trading.booking import FillBook
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState
from momentumbot.trading.sell_retry import SellRetry

log = logging.getLogger("momentumbot.trade")


@dataclass
class OrderEvents:
    """The listener side of orders; the trader's broker listener calls these."""

    journal: jr.Journal
    engine: LiveEngine
    router: OrderRouter
    fills: FillBook
    run: RunState
    run_id: str
    retry: SellRetry | None = None  # set by the session once the stepper exists

    def oid_of(self, ref: str) -> int | None:
        """This run's order id in a client order id, or None."""
        parsed = parse_ref(ref)
        if parsed is None or parsed[0] != self.run_id:
            return None
        oid = parsed[1]
        return oid if 0 <= oid < self.engine.order_count() else None

    # ---------------------------------------------------------------- fills in

    def receive(self, rep: ExecReport, *, adopted: bool = False) -> None:
        oid = self.oid_of(rep.order_ref)
        if oid is None:
            if rep.symbol in self.engine.symbols:
                log.warning("execution %s for %s is not from this run", rep.exec_id, rep.order_ref)
            return
        if self.fills.receive(rep, oid, adopted=adopted):
            self.run.wake.set()

    def on_execution(self, report: ExecReport) -> None:
        self.receive(report)

    def on_commission(self, exec_id: str, commission_micro: int) -> None:
        self.fills.commission(exec_id, commission_micro)

    # ---------------------------------------------------------------- order status

    def end_from_broker(self, oid: int, state: str, detail: str) -> None:
        """The broker ended the order: the engine's order ends too (if it still works)."""
        ended = self.engine.orders.status[oid] == OrderStatus.WORKING
        if ended:
            info = {"oid": oid, "why": detail}
            self.journal.add_input(rp.END, None, None, info)
            rp.apply_input(self.engine, rp.END, None, None, info)
        if self.router.state.get(oid) not in jr.DONE_STATES:
            self.router.set_state(oid, state, detail)
        if ended and self.retry is not None:
            self.retry.ended_by_broker(oid, detail, rejected=state == jr.REJECTED)

    def on_order_status(self, report: OrderReport) -> None:
        oid = self.oid_of(report.order_ref)
        if oid is None:
            return
        j, now = self.journal, self.run.server_ns
        with j.transaction():
            j.update_order(oid, now, ib_order_id=report.ib_order_id, perm_id=report.perm_id or None)
            if report.status == "working":
                self.router.acknowledged(oid, report.ib_status)
            elif report.status == "cancelled":
                self.end_from_broker(oid, jr.CANCELLED, report.why or report.ib_status)
            else:
                j.order_event(oid, "ib_filled", f"{report.filled} filled", now)
        self.run.wake.set()

    def on_order_note(self, order_ref: str, event: str, text: str) -> None:
        oid = self.oid_of(order_ref)
        if oid is None:
            return
        with self.journal.transaction():
            self.journal.order_event(oid, event, text, self.run.server_ns)
        self.run.wake.set()

    def on_modify_failed(self, order_ref: str, why: str) -> None:
        oid = self.oid_of(order_ref)
        if oid is None:
            return
        log.warning("order %s: modification refused, the original keeps working: %s",
                    order_ref, why)  # fmt: skip
        with self.journal.transaction():
            self.router.modify_failed(oid, why)
        self.run.wake.set()

    def on_order_rejected(self, order_ref: str, why: str) -> None:
        oid = self.oid_of(order_ref)
        if oid is None:
            return
        with self.journal.transaction():
            log.error("order %s rejected: %s", order_ref, why)
            self.run.stats.rejected += 1
            self.router.rejected(oid)
            self.end_from_broker(oid, jr.REJECTED, why)
        self.run.wake.set()

"""Fills in: executions are journaled as they arrive and booked into the engine at their
minute (a fill whose minute was stepped already is booked at once); commission reports
replace the model's estimate. What is received but not booked yet counts in reconciliation.
A fill time off the server clock is clamped (trading.fill_clock); an execution correction
replaces the fill it corrects."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from momentumbot.domain.orders import Side
from momentumbot.domain.units import NS_PER_MINUTE, usd_to_micro
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import ExecReport
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.trading import fill_clock as fc
from momentumbot.trading.routing import OrderRouter

log = logging.getLogger("momentumbot.trade")


@dataclass
class Pending:
    """An execution received but not booked yet (its minute has not been stepped)."""

    report: ExecReport
    oid: int
    commission_micro: int | None
    seen_ns: int = 0  # the server clock the bot knew when it arrived


@dataclass
class FillBook:
    """Executions from receipt to the engine's books; see the module docstring."""

    journal: jr.Journal
    engine: LiveEngine
    router: OrderRouter
    now_ns: Callable[[], int]
    pending: list[Pending] = field(default_factory=list)
    fill_index: dict[str, int] = field(default_factory=dict)  # exec id -> engine fill
    unreported: set[str] = field(default_factory=set)  # booked with the model's commission
    corrections: dict[str, str] = field(default_factory=dict)  # correction -> corrected exec id

    def known(self, exec_id: str) -> bool:
        return (
            exec_id in self.fill_index
            or exec_id in self.corrections
            or any(p.report.exec_id == exec_id for p in self.pending)
        )

    def receive(self, rep: ExecReport, oid: int, *, adopted: bool = False) -> bool:
        """Journal a new execution and queue it; whether it was new (a correction replaces
        the execution it corrects: see `correct`)."""
        if self.known(rep.exec_id):
            return False
        corrected = next((x for x in rep.replaces if self.known(x)), None)
        if corrected is not None:
            self.correct(self.corrections.get(corrected, corrected), rep, oid)
            return False
        j, now = self.journal, self.now_ns()
        rep = fc.not_before_decision(rep, self.engine.order_row(oid)[4], now)
        side_name = Side(rep.side).label
        with j.transaction():
            new = j.add_fill(
                rep.exec_id, oid, rep.order_ref, rep.symbol, side_name, rep.quantity, rep.price,
                rep.label_ns, rep.perm_id or None, rep.commission_micro, now,
            )  # fmt: skip
            if new:
                j.order_event(
                    oid, "adopted fill" if adopted else "fill",
                    f"{rep.exec_id} {side_name} {rep.quantity} @ {rep.price!r}", now,
                )  # fmt: skip
        if new:
            self.queue(rep, oid, rep.commission_micro)
        return new

    def correct(self, exec_id: str, rep: ExecReport, oid: int) -> None:
        """A correction of execution `exec_id`: it replaces it, never books a second fill. A
        pending one takes the corrected quantity and price; a booked one keeps its books (a
        changed quantity or price is logged loudly, and reconciliation checks the position)."""
        self.corrections[rep.exec_id] = exec_id
        pending = next((p for p in self.pending if p.report.exec_id == exec_id), None)
        if pending is not None:
            old = pending.report
            pending.report = dataclasses.replace(old, quantity=rep.quantity, price=rep.price)
        else:
            fid = self.fill_index[exec_id]
            fills = self.engine.fills
            old_qty, old_price = int(fills.quantity[fid]), float(fills.price[fid])
            if (old_qty, old_price) != (rep.quantity, rep.price):
                log.error(
                    "execution %s corrected by %s to %d @ %r (booked: %d @ %r); the books keep "
                    "the booked fill: check the position", exec_id, rep.exec_id, rep.quantity,
                    rep.price, old_qty, old_price,
                )  # fmt: skip
        text = f"{exec_id} replaced by {rep.exec_id}: {rep.quantity} @ {rep.price!r}"
        with self.journal.transaction():
            self.journal.order_event(oid, "execution corrected", text, self.now_ns())
        log.info("execution %s", text)

    def queue(self, rep: ExecReport, oid: int, commission: int | None) -> None:
        p = Pending(rep, oid, commission, self.clock_ns())
        e = self.engine
        if e.started and rep.label_ns < e.next_label:
            self.book(p)  # its minute was stepped already: book it now
        else:
            self.pending.append(p)

    def requeue_unbooked(self, account: str) -> None:
        """Executions journaled but not booked when the bot stopped wait for their minute."""
        queued = {p.report.exec_id for p in self.pending}
        for f in self.journal.fills().values():
            if f.fill_index is None and f.exec_id not in queued:
                rep = ExecReport(
                    exec_id=f.exec_id, order_ref=f.order_ref, perm_id=0, ib_order_id=0,
                    client_id=0, account=account, symbol=f.symbol,
                    side=1 if f.side == "BUY" else -1, quantity=f.quantity, price=f.price,
                    time_ns=f.label_ns, commission_micro=f.reported_commission_micro,
                )  # fmt: skip
                self.queue(rep, f.oid, f.reported_commission_micro)

    def book_due(self, t: int) -> None:
        """Book every pending fill of minutes up to `t` (before `t` is stepped)."""
        self.check_clock(t + NS_PER_MINUTE)  # minute t is complete: its bars are in
        due = [p for p in self.pending if p.report.label_ns <= t]
        if not due:
            return
        self.pending = [p for p in self.pending if p.report.label_ns > t]
        for p in due:
            self.book(p)

    def clock_ns(self, at_least: int = 0) -> int:
        """The server clock as far as the bot knows: its latest time, and every minute before
        the engine's next one has closed."""
        e = self.engine
        return max(self.now_ns(), e.next_label if e.started else 0, at_least)

    def check_clock(self, at_least: int = 0) -> None:
        """Pending fills whose time is ahead of a server time learnt after they arrived are
        clamped (see trading.fill_clock)."""
        now = self.clock_ns(at_least)
        for p in self.pending:
            if now > p.seen_ns:
                p.report = fc.not_after_server(p.report, now, p.seen_ns)

    def book(self, p: Pending) -> None:
        e, j = self.engine, self.journal
        rep = p.report
        commission = p.commission_micro
        if commission is None:
            commission = e.estimate_commission_micro(p.oid, rep.quantity, rep.price)
            self.unreported.add(rep.exec_id)
        info = {
            "oid": p.oid, "qty": rep.quantity, "price": rep.price, "commission_micro": commission,
            "label_ns": rep.label_ns, "exec_id": rep.exec_id,
        }  # fmt: skip
        with j.transaction():
            j.add_input(rp.FILL, rep.label_ns, None, info)
            applied = rp.apply_input(e, rp.FILL, rep.label_ns, None, info)
            fid = applied.fill_index
            assert fid is not None
            j.book_fill(rep.exec_id, fid, commission)
            self.fill_index[rep.exec_id] = fid
            _sym, _side, _qty, _reason, _dec, status, filled = e.order_row(p.oid)
            j.update_order(p.oid, self.now_ns(), filled=filled)
            if status == "filled" and self.router.state.get(p.oid) not in jr.DONE_STATES:
                self.router.set_state(p.oid, jr.FILLED, "")

    def commission(self, exec_id: str, commission_micro: int) -> None:
        """IB's commission report for an execution, before or after it was booked (one for a
        correction is the corrected execution's)."""
        exec_id = self.corrections.get(exec_id, exec_id)
        j = self.journal
        for p in self.pending:
            if p.report.exec_id == exec_id:
                p.commission_micro = commission_micro
                with j.transaction():
                    j.report_commission(exec_id, commission_micro)
                return
        fid = self.fill_index.get(exec_id)
        if fid is None:
            return  # not ours, or the execution has not arrived yet (reconcile adopts it)
        self.unreported.discard(exec_id)
        with j.transaction():
            j.report_commission(exec_id, commission_micro)
            if int(self.engine.fills.commission[fid]) != commission_micro:
                info = {"fid": fid, "commission_micro": commission_micro, "exec_id": exec_id}
                j.add_input(rp.COMMISSION, None, None, info)
                rp.apply_input(self.engine, rp.COMMISSION, None, None, info)
                j.set_fill_commission(exec_id, commission_micro)

    # ---- what reconciliation adds to the engine's books

    def pending_quantity(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for p in self.pending:
            out[p.oid] = out.get(p.oid, 0) + p.report.quantity
        return out

    def pending_positions(self, positions: dict[str, int]) -> dict[str, int]:
        out = dict(positions)
        for p in self.pending:
            out[p.report.symbol] = out.get(p.report.symbol, 0) + p.report.side * p.report.quantity
        return out

    def pending_cash_micro(self) -> int:
        """Cash the pending fills move (commissions not reported yet count as 0)."""
        return -sum(
            p.report.side * usd_to_micro(p.report.quantity * p.report.price)
            + (p.commission_micro or 0)
            for p in self.pending
        )

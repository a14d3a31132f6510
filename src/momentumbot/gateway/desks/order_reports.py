"""Order reports, the orders desk's way out: openOrder / orderStatus / execDetails /
commissionReport for the client that placed the order (held during an outage, delayed or
duplicated by the exec faults on the injected real clock), then position and account pushes.
Execution and completed-order times are written as `exec-time-format` says."""

from __future__ import annotations

import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import BUY
from momentumbot.gateway import protocol as p
from momentumbot.gateway.broker import Event, Execution, Fill, SimOrder, StatusChange
from momentumbot.gateway.clock import Monotonic
from momentumbot.gateway.desks.accounts import AccountDesk
from momentumbot.gateway.desks.sessions import SessionDesk
from momentumbot.gateway.exec_time import DEFAULT_TWS_TIMEZONE, format_exec_time
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import MarketData
from momentumbot.gateway.record import Recorder

log = logging.getLogger("momentumbot.gateway")


class OrderReports:
    def __init__(
        self,
        market: MarketData,
        sessions: SessionDesk,
        accounts: AccountDesk,
        record: Recorder,
        faults: Faults,
        real: Monotonic,
        now: Callable[[], int],
        tws_zone: ZoneInfo | None = None,
    ) -> None:
        self.market = market
        self.tws_zone = tws_zone or ZoneInfo(DEFAULT_TWS_TIMEZONE)
        self.corrected: set[str] = set()  # exec ids replaced by a correction (`exec-correction`)
        self._executions = 0
        self.sessions = sessions
        self.accounts = accounts
        self.record = record
        self.faults = faults
        self.real = real
        self.now = now

    # ---- views

    def time_text(self, ns: int) -> str:
        """A time as IB writes it in execDetails and completedOrder (`exec-time-format`)."""
        return format_exec_time(ns, self.faults.exec_time_format, self.tws_zone)

    def view(self, o: SimOrder) -> p.OrderView:
        return p.OrderView(
            order_id=o.order_id,
            client_id=o.client_id,
            perm_id=o.perm_id,
            stock=self.market.stocks[o.symbol],
            action=o.action,
            total_qty=o.total_qty,
            order_type=o.order_type,
            lmt_price=o.lmt_price,
            aux_price=o.aux_price,
            tif=o.tif,
            account=o.account,
            order_ref=o.order_ref,
            outside_rth=o.outside_rth,
            status=o.status,
            filled=o.filled,
            remaining=o.remaining,
            avg_fill_price=o.avg_fill_price,
            last_fill_price=o.last_fill_price,
            completed_time=self.time_text(o.done_ns) if o.done_ns else "",
            completed_status=o.status if o.status == "Filled" else f"{o.status}: {o.why_done}",
        )

    def exec_view(self, f: Fill, req_id: int) -> p.ExecView:
        return p.ExecView(
            req_id=req_id,
            order_id=f.order_id,
            client_id=f.client_id,
            perm_id=f.perm_id,
            stock=self.market.stocks[f.symbol],
            exec_id=self.exec_id(f),
            time=self.time_text(f.bar_ns),
            account=f.account,
            side="BOT" if f.side == BUY else "SLD",
            shares=f.qty,
            price=f.price,
            cum_qty=f.cum_qty,
            avg_price=f.avg_price,
            order_ref=f.order_ref,
        )

    def exec_id(self, f: Fill) -> str:
        """The fill's execId as reported now: its correction's once it was corrected."""
        return correction_id(f.exec_id) if f.exec_id in self.corrected else f.exec_id

    def commission_msg(self, f: Fill) -> bytes:
        realized = None if f.realized_micro is None else f.realized_micro / MICRO
        return p.msg_commission_report(self.exec_id(f), f.commission, realized)

    # ---- out

    @staticmethod
    def _status_msg(view: p.OrderView) -> Callable[[int], list[bytes]]:
        """orderStatus alone (the same at every server version)."""
        return lambda sv: [p.msg_order_status(view)]

    @staticmethod
    def _order_msgs(view: p.OrderView) -> Callable[[int], list[bytes]]:
        """openOrder and orderStatus, built at a session's server version."""
        return lambda sv: [p.msg_open_order(view, sv=sv), p.msg_order_status(view)]

    def placed(self, order: SimOrder) -> None:
        view = self.view(order)
        self.sessions.route(order.client_id, self._order_msgs(view))

    def cancelled(self, order: SimOrder) -> None:
        self.record.order("cancelled", order, self.now())
        log.info("order %d (client %d) cancelled", order.order_id, order.client_id)
        view = self.view(order)
        self.sessions.route(
            order.client_id,
            lambda sv: [
                p.msg_error(order.order_id, 202, "Order Canceled - reason:", sv=sv),
                p.msg_order_status(view),
            ],
        )

    def deliver(self, events: list[Event]) -> None:
        """What the broker did (status changes, fills) goes to the clients; then positions and
        accounts touched by fills are pushed."""
        touched: set[tuple[str, str]] = set()
        now = self.now()
        for ev in events:
            if isinstance(ev, StatusChange):
                o = ev.order
                self.record.order("status", o, now)
                view = self.view(o)
                if o.status == "Cancelled":
                    self.sessions.route(o.client_id, self._status_msg(view))
                else:
                    self.sessions.route(o.client_id, self._order_msgs(view))
            elif isinstance(ev, Execution):
                o, f = ev.order, ev.fill
                acct = self.accounts.broker.accounts[f.account]
                self.record.fill(f, acct.cash_micro, acct.position(f.symbol).qty, now)
                log.info(
                    "fill %s %s %d %s @ %.4f commission %.2f (order %d client %d, ref %r)",
                    f.account,
                    "BOT" if f.side == BUY else "SLD",
                    f.qty,
                    f.symbol,
                    f.price,
                    f.commission,
                    f.order_id,
                    f.client_id,
                    f.order_ref,
                )
                self._deliver_execution(o, f)
                touched.add((f.account, f.symbol))
        for account, symbol in sorted(touched):
            self.accounts.push_position(account, symbol)
        for account in sorted({a for a, _ in touched}):
            self.accounts.push_account(account)

    def _deliver_execution(self, o: SimOrder, f: Fill) -> None:
        view = self.view(o)
        s = self.sessions.clients.get(o.client_id)
        faults = self.faults
        if s is None:
            return
        exec_msg = p.msg_exec_details(self.exec_view(f, -1), sv=s.server_version)
        status = self._order_msgs(view)(s.server_version)
        comm = self.commission_msg(f)
        execs = [exec_msg, exec_msg] if faults.exec_duplicate else [exec_msg]
        self._executions += 1
        every = faults.exec_correction_every
        if every and self._executions % every == 0:
            self.corrected.add(f.exec_id)
            self.record.note("exec correction", self.now(), exec_id=f.exec_id)
            log.info("execution %s corrected by %s", f.exec_id, correction_id(f.exec_id))
            execs.append(p.msg_exec_details(self.exec_view(f, -1), sv=s.server_version))
            comm = self.commission_msg(f)
        if self.sessions.held_back(s, [*execs, *status, comm]):
            return
        if faults.exec_delay <= 0 and faults.commission_delay <= 0:
            s.send_many([*execs, *status, comm])
            return
        if faults.exec_delay > 0:
            s.send_many(status)
            self.real.call_later(faults.exec_delay, lambda: s.send_now(execs))
        else:
            s.send_many([*execs, *status])
        comm_delay = faults.exec_delay + faults.commission_delay
        if comm_delay > 0:
            self.real.call_later(comm_delay + 1e-3, lambda: s.send_now([comm]))
        else:
            s.send(comm)


def correction_id(exec_id: str) -> str:
    """The execId of a correction: the last dot-separated part bumped (IB: "...01.01" ->
    "...01.02")."""
    head, _, last = exec_id.rpartition(".")
    return f"{head}.{int(last) + 1:0{len(last)}d}"

"""The orders desk: order ids (nextValidId), placing, modifying and cancelling orders (with the
reject faults), what-if orders, and the open / completed orders and executions clients ask for."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from momentumbot.domain.units import NS
from momentumbot.execution.costs import BUY
from momentumbot.gateway import protocol as p
from momentumbot.gateway.broker import Bar, OrderRejected, OrderRequest, SimBroker
from momentumbot.gateway.desks.accounts import AccountDesk
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.desks.contracts import ContractDesk
from momentumbot.gateway.desks.order_reports import OrderReports
from momentumbot.gateway.desks.sessions import Handlers, ignore, register
from momentumbot.gateway.faults import Faults, warnings_for
from momentumbot.gateway.market import ny_time, parse_end_datetime
from momentumbot.gateway.place_order import read_place_order
from momentumbot.gateway.protocol import Reader
from momentumbot.gateway.record import Recorder

log = logging.getLogger("momentumbot.gateway")

# IB's texts for the order warnings of the order-warning fault (the order keeps working)
WARNING_TEXTS = {
    10349: "Order TIF was set to DAY based on order preset.",
    399: "Order Message:\nWarning: Your order will not be placed at the exchange until "
    "the market opens.",
    404: "Shares for this order are not immediately available for short sale. The order will "
    "be held while we attempt to locate the shares.",
    10311: "This order will be directly routed to NYSE. Direct routed orders may result in "
    "higher trade fees. Restriction is specified in Precautionary Settings of Global "
    "Configuration/API.",
}


class OrderDesk:
    def __init__(
        self,
        broker: SimBroker,
        contracts: ContractDesk,
        accounts: AccountDesk,
        reports: OrderReports,
        record: Recorder,
        faults: Faults,
        first_order_id: int,
        now: Callable[[], int],
        session_open: Callable[[], bool],
    ) -> None:
        self.broker = broker
        self.contracts = contracts
        self.accounts = accounts
        self.reports = reports
        self.record = record
        self.faults = faults
        self.first_order_id = first_order_id
        self.next_valid_id = first_order_id
        self.now = now
        self.session_open = session_open
        self.day_reset_ns = 0  # the last nightly reset or restart (`executions-window=day`)

    def register(self, handlers: Handlers) -> None:
        register(
            handlers,
            {
                3: self._req_place_order,
                4: self._req_cancel_order,
                5: self._req_open_orders,
                7: self._req_executions,
                8: self._req_ids,
                15: ignore,  # reqAutoOpenOrders
                16: self._req_all_open_orders,
                58: self._req_global_cancel,
                99: self._req_completed_orders,
            },
        )

    # ---- the market's events

    def on_session_open(self) -> None:
        self.reports.deliver(self.broker.on_session_open())
        for name in self.broker.accounts:  # settled cash, day trades left, previous-day equity
            self.accounts.push_account(name)

    def on_session_close(self, t: int) -> None:
        self.reports.deliver(self.broker.on_session_close(t))
        self.accounts.on_session_close()

    def on_bar_close(self, label: int, bars: dict[str, Bar]) -> None:
        """Working orders fill in bar `label`."""
        t = ny_time(label)
        self.reports.deliver(self.broker.on_bar_close(label, bars, (t.year, t.month)))

    def restart(self) -> None:
        """nextValidId rolls back; ids of finished orders are forgotten (and, with
        `executions-window=day`, executions and completed orders)."""
        self.next_valid_id = self.first_order_id
        self.broker.forget_done_ids()
        self.reset_day()

    def reset_day(self) -> None:
        """A nightly reset or a restart: with `executions-window=day`, executions and completed
        orders before now are no longer reported."""
        self.day_reset_ns = self.now()

    def window_start_ns(self) -> int:
        """The earliest time reqExecutions and reqCompletedOrders report (0: everything): the
        last nightly reset, restart or New York midnight, whichever is latest."""
        if self.faults.executions_window != "day":
            return 0
        midnight = ny_time(self.now()).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(self.day_reset_ns, int(midnight.timestamp()) * NS)

    # ---- requests

    def _req_ids(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_next_valid_id(self.next_valid_id))

    def _req_place_order(self, s: ClientSession, r: Reader) -> None:
        po = read_place_order(r, s.server_version)
        order_id, c, action, qty = po.order_id, po.contract, po.action, po.qty
        order_type, lmt, aux, tif, account = po.order_type, po.lmt, po.aux, po.tif, po.account
        order_ref, parent_id, outside_rth = po.order_ref, po.parent_id, po.outside_rth
        stock = self.contracts.resolve(c)
        symbol = stock.symbol if stock else c.symbol.upper()
        now = self.now()
        if stock is None:
            self.contracts.no_security(s, order_id)
            self.record.reject(s.client_id, order_id, symbol, 200, "no security definition", now)
            return
        if po.what_if:
            self.accounts.what_if(
                s, order_id, stock, action, qty, order_type, lmt, aux, tif, account
            )
            return
        try:
            if parent_id:
                raise OrderRejected(
                    201, "Order rejected - reason:attached (child) orders are not supported"
                )
            self._fault_check(s.client_id, order_id, stock.symbol)
            self._order_fault_check(s.client_id, order_id, stock.symbol, qty, lmt)
            if self.broker.perm_id_of(s.client_id, order_id) is None:  # the account's rules
                self.broker.check_account_rules(
                    account, stock.symbol, action, qty, self.accounts.mark
                )
            req = OrderRequest(
                s.client_id, order_id, stock.symbol, action, qty, order_type, lmt, aux, tif, account,
                order_ref, outside_rth,
            )  # fmt: skip
            order, modified = self.broker.place(req, now, self.session_open())
        except OrderRejected as exc:
            s.error(order_id, exc.code, exc.text, exc.advanced_json)
            self.record.reject(s.client_id, order_id, symbol, exc.code, exc.text, now)
            return
        self.next_valid_id = max(self.next_valid_id, order_id + 1)
        self.record.order("modified" if modified else "placed", order, now)
        log.info(
            "client %d: %s order %d %s %d %s %s%s ref=%r",
            s.client_id,
            "modified" if modified else "new",
            order_id,
            order.action,
            order.total_qty,
            order.symbol,
            order.order_type,
            f" @{order.lmt_price or order.aux_price}" if order.order_type != "MKT" else "",
            order.order_ref,
        )
        self.reports.placed(order)
        if not modified:
            for code in warnings_for(self.faults, order.symbol):
                text = WARNING_TEXTS.get(code, f"Order message {code} (fault injection)")
                s.error(order_id, code, text)
                self.record.note("order warning", now, order_id=order_id, code=code, text=text)

    def _order_fault_check(
        self, client_id: int, order_id: int, symbol: str, qty: float, lmt: float | None
    ) -> None:
        """reject-modify (a modify of a working order) and value-limit (a new order)."""
        known = self.broker.perm_id_of(client_id, order_id) is not None
        if known and self.faults.reject_modify:
            raise OrderRejected(
                201, "Order rejected - reason:The order cannot be modified at this time."
            )
        limit = self.faults.value_limit
        if not known and limit > 0:
            price = lmt if lmt is not None and 0 < lmt < 1e300 else self.accounts.mark(symbol)
            value = qty * price
            if value > limit:
                raise OrderRejected(
                    451,
                    f"The order value {value:,.2f} USD exceeds the Total Value Limit of "
                    f"{limit:,.2f} USD (Precautionary Settings).",
                )

    def _fault_check(self, client_id: int, order_id: int, symbol: str) -> None:
        """The reject faults (new orders only) and the insufficient-funds check."""
        faults = self.faults
        known = self.broker.perm_id_of(client_id, order_id) is not None
        if not known and (faults.reject_next > 0 or symbol in faults.reject_symbols):
            if faults.reject_next > 0:
                faults.reject_next -= 1
            raise OrderRejected(
                201,
                "Order rejected - reason:rejected by the simulated gateway (fault injection)",
            )
        self.broker.insufficient_funds_check = faults.insufficient_funds
        if faults.insufficient_funds:
            for sym in {symbol} | self.broker.working_symbols():
                self.broker.last_close[sym] = self.accounts.mark(sym)

    def _req_cancel_order(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        order_id = r.integer()
        try:
            order = self.broker.cancel(s.client_id, order_id, self.now())
        except OrderRejected as exc:
            s.error(order_id, exc.code, exc.text)
            return
        self.reports.cancelled(order)

    def _req_global_cancel(self, s: ClientSession, r: Reader) -> None:
        for order in self.broker.cancel_all(self.now()):
            self.reports.cancelled(order)

    def _req_open_orders(self, s: ClientSession, r: Reader) -> None:
        self._send_open_orders(s, only_client=s.client_id)

    def _req_all_open_orders(self, s: ClientSession, r: Reader) -> None:
        self._send_open_orders(s, only_client=None)

    def _send_open_orders(self, s: ClientSession, only_client: int | None) -> None:
        for o in self.broker.working():
            if only_client is None or o.client_id == only_client:
                v = self.reports.view(o)
                s.send(p.msg_open_order(v, sv=s.server_version))
                s.send(p.msg_order_status(v))
        s.send(p.msg_open_order_end())

    def _req_completed_orders(self, s: ClientSession, r: Reader) -> None:
        since = self.window_start_ns()
        for o in sorted(self.broker.orders.values(), key=lambda o: o.perm_id):
            if not o.is_working and (o.done_ns or o.placed_ns) >= since:
                s.send(p.msg_completed_order(self.reports.view(o), sv=s.server_version))
        s.send(p.msg_completed_orders_end())

    def _req_executions(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        client_id = r.integer()
        account = r.text()
        since = r.text()
        symbol = r.text().upper()
        sec_type = r.text().upper()
        r.text()  # exchange
        side = r.text().upper()
        since_ns = self.window_start_ns()
        if since.strip():
            with contextlib.suppress(ValueError):  # an unreadable time: no time filter
                since_ns = max(since_ns, parse_end_datetime(since, self.now()))
        for f in self.broker.fills:
            if f.client_id != s.client_id and s.client_id != 0:
                continue
            if client_id and f.client_id != client_id:
                continue
            if account and f.account != account:
                continue
            if symbol and f.symbol != symbol:
                continue
            if sec_type and sec_type != "STK":
                continue
            if side and side not in (("BUY", "BOT") if f.side == BUY else ("SELL", "SLD")):
                continue
            if f.bar_ns < since_ns:
                continue
            s.send(p.msg_exec_details(self.reports.exec_view(f, req_id), sv=s.server_version))
            s.send(self.reports.commission_msg(f))
        s.send(p.msg_exec_details_end(req_id))

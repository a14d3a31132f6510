"""Orders out: the journal's state of every order, placing, cancelling, holding them while
the connection cannot trade, and turning marketable limits that did not fill into market
orders.

An order's journal state moves INTENT -> SENT -> WORKING -> FILLED / CANCELLED / REJECTED
(CANCEL_SENT on the way to CANCELLED; LOST when it ended before it reached the broker;
SKIPPED when the engine or the risk gate kept it back). `TRANSITIONS` is the whole table: a
change it does not list raises `RoutingError` (a bug, not a market event). Every change is
journaled with an event.

Sends are idempotent: an order is placed only from INTENT, and placing moves it to SENT, so
whoever asks second (the held queue after a restore, reconciliation's re-send, the stop) finds
it sent and sends nothing. Reconciliation that finds a SENT order IB never received moves it
back to INTENT (journaled) before sending it again."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.errors import MomentumbotError
from momentumbot.domain.orders import OrderState as St
from momentumbot.domain.orders import OrderStatus
from momentumbot.domain.units import NS
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker
from momentumbot.journal import journal as jr
from momentumbot.journal.reconcile import make_ref

log = logging.getLogger("momentumbot.trade")

# state -> the states it may move to. The done states (FILLED, CANCELLED, REJECTED, SKIPPED,
# LOST) move nowhere, except that a rejection may follow the client library's own
# "cancelled" (see `OrderRouter.rejected`).
TRANSITIONS: dict[str, frozenset[str]] = {
    # handed to the broker; confirmed at the broker by reconciliation; ended before it was
    # sent (LOST); ended, rejected or filled by the broker before its acknowledgement came
    St.INTENT: frozenset({St.SENT, St.WORKING, St.LOST, St.CANCELLED, St.REJECTED, St.FILLED}),
    # INTENT again: reconciliation found the broker never had it (to be sent once more)
    St.SENT: frozenset(
        {St.INTENT, St.WORKING, St.CANCEL_SENT, St.CANCELLED, St.REJECTED, St.FILLED}
    ),
    St.WORKING: frozenset({St.CANCEL_SENT, St.CANCELLED, St.REJECTED, St.FILLED}),
    St.CANCEL_SENT: frozenset({St.CANCEL_SENT, St.CANCELLED, St.REJECTED, St.FILLED}),
}


class RoutingError(MomentumbotError):
    """An order state change the routing table does not allow (a bug)."""

    exit_code = 7


def check_transition(oid: int, old: str | None, new: str) -> None:
    if old is None or new in TRANSITIONS.get(old, frozenset()):
        return
    raise RoutingError(f"order {oid}: {old} -> {new} is not a transition of the routing table")


@dataclass
class OrderRouter:
    """Routes the engine's orders to the broker; see the module docstring."""

    journal: jr.Journal
    broker: Broker
    engine: LiveEngine
    run_id: str
    cfg: BrokerConfig
    now_ns: Callable[[], int]  # the server's clock as the bot knows it
    can_trade: Callable[[], bool]
    describe_connection: Callable[[], str]
    state: dict[int, str] = field(default_factory=dict)  # oid -> journal state
    held: list[tuple[str, int]] = field(default_factory=list)  # ("place" | "cancel", oid)
    limit_placed: dict[int, int] = field(default_factory=dict)  # oid -> when a limit went out
    sends: int = 0  # messages sent that change orders (a time round trip proves them read)
    _index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self._index = {s: i for i, s in enumerate(self.engine.symbols)}

    def ref(self, oid: int) -> str:
        return make_ref(self.engine.order_row(oid)[3], self.run_id, oid)

    def start(self, oid: int, state: str) -> None:
        """A new order of the engine's: INTENT (to be sent) or SKIPPED (kept back)."""
        self.state[oid] = state

    def set_state(self, oid: int, state: str, detail: str = "", **fields: Any) -> None:
        check_transition(oid, self.state.get(oid), state)
        now = self.now_ns()
        self.state[oid] = state
        self.journal.update_order(oid, now, state=state, **fields)
        self.journal.order_event(oid, state, detail, now)

    def acknowledged(self, oid: int, detail: str) -> None:
        """The broker reports the order working."""
        if self.state.get(oid) in (St.INTENT, St.SENT):
            self.set_state(oid, St.WORKING, detail)

    def rejected(self, oid: int) -> None:
        """Before a rejection is booked: ib_async marks an order cancelled before the error
        that rejected it arrives; the order was sent, not cancelled."""
        if self.state.get(oid) == St.CANCELLED:
            self.state[oid] = St.SENT

    def dispatch(
        self, ended: tuple[int, ...] | list[int], new: tuple[int, ...] | list[int]
    ) -> None:
        """Cancel what the engine ended, place what it decided."""
        for oid in ended:
            self.cancel(oid)
        for oid in new:
            if self.engine.orders.status[oid] == OrderStatus.WORKING:
                self.place(oid)

    def limit_price(self, sym: str, side: int, last_close: float) -> float | None:
        """marketable_limit: the touch moved limit_offset_bps through it, in cents."""
        if self.cfg.order_type != "marketable_limit":
            return None
        bid, ask = self.broker.quote(sym)
        touch = ask if side > 0 else bid
        if math.isnan(touch):
            touch = last_close
        off = self.cfg.limit_offset_bps * 1e-4
        if side > 0:
            return math.ceil(touch * (1 + off) * 100 - 1e-9) / 100
        return math.floor(touch * (1 - off) * 100 + 1e-9) / 100

    def place(self, oid: int, *, resend: bool = False, market: bool = False) -> None:
        """Send the order if it is still an intent (never twice: see the module docstring);
        hold it while the connection cannot trade (`resend`: reconciliation, on a link it
        has just checked, sends at once)."""
        e, j, b = self.engine, self.journal, self.broker
        if self.state.get(oid, St.INTENT) != St.INTENT:  # an order new to the table is one
            log.debug("order %d not sent: it is %s", oid, self.state.get(oid))
            return
        sym, side, qty, reason, _dec, _status, filled = e.order_row(oid)
        if not self.can_trade() and not resend:
            if ("place", oid) not in self.held:
                self.held.append(("place", oid))
                j.order_event(oid, "held", self.describe_connection(), self.now_ns())
            return
        remaining = qty - filled
        if remaining <= 0:
            return
        last = float(e.st.last_close[self._index[sym]])
        limit = None if market else self.limit_price(sym, side, last)
        ib_id = b.place(make_ref(reason, self.run_id, oid), sym, side, remaining, limit_price=limit)
        self.sends += 1
        now = self.now_ns()
        if limit is not None:
            # the decision time is the latest time we know for sure the server has reached
            self.limit_placed[oid] = max(now, e.next_label)
        with j.transaction():
            self.set_state(
                oid, jr.SENT, ("re-sent" if resend else "") + (f" limit {limit}" if limit else ""),
                ib_order_id=ib_id, client_id=b.client_id, sent_ns=now, lmt_price=limit,
                **({"order_type": "MKT"} if market else {}),
            )  # fmt: skip

    def resend(self, oid: int) -> None:
        """Reconciliation found that IB never received the order: send it now (back to
        INTENT first when it was SENT; out of the held queue, so that cannot send it too)."""
        if ("place", oid) in self.held:
            self.held.remove(("place", oid))
        if self.state.get(oid) == St.SENT:
            with self.journal.transaction():
                self.set_state(oid, St.INTENT, "IB never received it: to be sent again")
        self.place(oid, resend=True)

    def cancel(self, oid: int) -> None:
        if self.state.get(oid) in jr.DONE_STATES:
            return
        if ("place", oid) in self.held:
            self.held.remove(("place", oid))
            with self.journal.transaction():
                self.set_state(oid, jr.LOST, "cancelled while held")
            return
        if not self.can_trade():
            self.held.append(("cancel", oid))
            return
        if self.broker.cancel(self.ref(oid)):
            self.sends += 1
            with self.journal.transaction():
                self.set_state(oid, jr.CANCEL_SENT)

    def modify_failed(self, oid: int, why: str) -> None:
        """The broker refused a modification; the original order keeps working there. A
        limit that could not become a market order is cancelled instead (confirmed by the
        broker; a sell is then sent again as a market order by `sell_retry`)."""
        self.journal.order_event(oid, "modify_failed", why, self.now_ns())
        self.limit_placed.pop(oid, None)
        if self.state.get(oid) in (St.SENT, St.WORKING):
            self.cancel(oid)

    def release_held(self) -> None:
        """After a reconnect or a restore: send what was held, in order."""
        held, self.held = self.held, []
        for what, oid in held:
            if what == "place":
                if self.state.get(oid, St.INTENT) != St.INTENT:
                    continue  # sent meanwhile (reconciliation) or ended
                if self.engine.orders.status[oid] == OrderStatus.WORKING:
                    self.place(oid)
                else:
                    with self.journal.transaction():
                        self.set_state(oid, jr.LOST, "ended while held")
            else:
                self.cancel(oid)

    def limits_to_market(self) -> None:
        """Limits working longer than limit_timeout_seconds of server time go to market."""
        if not self.limit_placed:
            return
        timeout = int(self.cfg.limit_timeout_seconds * NS)
        now = self.now_ns()
        for oid, placed in list(self.limit_placed.items()):
            if self.engine.orders.status[oid] != OrderStatus.WORKING:
                del self.limit_placed[oid]
                continue
            if now - placed >= timeout and self.can_trade():
                if self.broker.modify_to_market(self.ref(oid)):
                    with self.journal.transaction():
                        self.journal.update_order(oid, now, order_type="MKT")
                        self.journal.order_event(oid, "to_market", "limit not filled in time", now)
                del self.limit_placed[oid]

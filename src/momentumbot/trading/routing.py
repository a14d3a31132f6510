"""Orders out: the journal's state of every order, placing, cancelling, holding them while
the connection cannot trade, and turning marketable limits that did not fill into market
orders.

An order's journal state moves INTENT -> SENT -> WORKING -> FILLED / CANCELLED / REJECTED
(CANCEL_SENT on the way to CANCELLED; LOST when it ended before it reached IB; SKIPPED when
the engine or the risk gate kept it back). Every change is journaled with an event."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.units import NS
from momentumbot.engine import kernel as k
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.ib_broker import IbBroker
from momentumbot.journal import journal as jr
from momentumbot.journal.reconcile import make_ref


@dataclass
class OrderRouter:
    """Routes the engine's orders to the broker; see the module docstring."""

    journal: jr.Journal
    broker: IbBroker
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

    def set_state(self, oid: int, state: str, detail: str = "", **fields: Any) -> None:
        now = self.now_ns()
        self.state[oid] = state
        self.journal.update_order(oid, now, state=state, **fields)
        self.journal.order_event(oid, state, detail, now)

    def dispatch(
        self, ended: tuple[int, ...] | list[int], new: tuple[int, ...] | list[int]
    ) -> None:
        """Cancel what the engine ended, place what it decided."""
        for oid in ended:
            self.cancel(oid)
        for oid in new:
            if self.engine.orders.status[oid] == k.S_WORKING:
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

    def place(self, oid: int, *, resend: bool = False) -> None:
        e, j, b = self.engine, self.journal, self.broker
        sym, side, qty, reason, _dec, _status, filled = e.order_row(oid)
        if not self.can_trade() and not resend:
            self.held.append(("place", oid))
            j.order_event(oid, "held", self.describe_connection(), self.now_ns())
            return
        remaining = qty - filled
        if remaining <= 0:
            return
        last = float(e.st.last_close[self._index[sym]])
        limit = self.limit_price(sym, side, last)
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
            )  # fmt: skip

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

    def release_held(self) -> None:
        """After a reconnect or a restore: send what was held, in order."""
        held, self.held = self.held, []
        for what, oid in held:
            if what == "place":
                if self.engine.orders.status[oid] == k.S_WORKING:
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
            if self.engine.orders.status[oid] != k.S_WORKING:
                del self.limit_placed[oid]
                continue
            if now - placed >= timeout and self.can_trade():
                if self.broker.modify_to_market(self.ref(oid)):
                    with self.journal.transaction():
                        self.journal.update_order(oid, now, order_type="MKT")
                        self.journal.order_event(oid, "to_market", "limit not filled in time", now)
                del self.limit_placed[oid]

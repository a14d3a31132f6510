"""What the IB adapter knows about its orders' errors (for `ib_broker`): which orders IB has
acknowledged, which have a modification pending, which ib_async marked done after an error
while IB keeps them working; and asking IB (open and completed orders, by permId) about an
ambiguous error or an "Inactive" before the trader hears that an order ended. The codes
themselves are classified in `ib_order_errors`."""

from __future__ import annotations

import asyncio
import logging

from ib_async import IB, Trade

from momentumbot.execution.broker_protocol import BrokerListener
from momentumbot.execution.ib_order_errors import (
    WARNING_CODES,
    ErrorClass,
    classify,
    confirm_outcome,
)

log = logging.getLogger("momentumbot.broker")

# statuses ib_async sets itself after an order error (not IB's word on the order)
LOCAL_ERROR_STATUSES = frozenset({"Cancelled", "ValidationError"})
NOT_OPEN = frozenset({"Filled", "Cancelled", "ApiCancelled"})


class IbOrderErrors:
    def __init__(
        self,
        ib: IB,
        listener: BrokerListener,
        orders_lock: asyncio.Lock,
        trades: dict[str, Trade],
        request_timeout: float,
    ) -> None:
        self.ib = ib
        self.listener = listener
        self.orders_lock = orders_lock  # shared with the snapshot: one such request at a time
        self.trades = trades  # orderRef -> Trade, the adapter's
        self.request_timeout = request_timeout
        self.acked: set[str] = set()  # refs IB itself has reported
        # refs with a modification not yet answered by an error (its answer may cross a fill)
        self.modifying: set[str] = set()
        self.kept: set[str] = set()  # refs ib_async marked done after an error; IB has not
        self.tasks: set[asyncio.Task[None]] = set()

    def on_status(self, ref: str, trade: Trade) -> bool:
        """A status event of one of our orders: whether the trader should hear it (not
        ib_async's own mark after an error, not a local PendingSubmit, not an "Inactive"
        before IB has said whether it is rejected or held)."""
        status = trade.orderStatus.status
        last = trade.log[-1] if trade.log else None
        if last is not None and last.errorCode and status in LOCAL_ERROR_STATUSES:
            return False  # `on_error` classifies the error itself
        if status in ("PendingSubmit", "ApiPending"):
            return False
        self.acked.add(ref)
        if status == "Inactive":
            self.confirm_later(ref, "Inactive at IB", "ib_inactive")
            return False
        if status in NOT_OPEN:
            self.kept.discard(ref)
        return True

    def on_error(self, ref: str, code: int, text: str) -> None:
        """See `ib_order_errors`: a note, a failed modification, a reject of the order, or
        a question to IB before anything ends the order."""
        kind = classify(code, acknowledged=ref in self.acked, modifying=ref in self.modifying)
        if kind is ErrorClass.INFO:
            return
        log.debug("order %s: error %d is a %s", ref, code, kind.value)
        why = f"error {code}: {text}"
        if kind is not ErrorClass.REJECT and (kind is not ErrorClass.NOTE or code in WARNING_CODES):
            self.kept.add(ref)  # ib_async may have marked it cancelled; IB has not
        if kind is ErrorClass.NOTE:
            self.listener.on_order_note(ref, f"ib_{code}", text)
        elif kind is ErrorClass.MODIFY_FAILED:
            self.modifying.discard(ref)
            self.listener.on_modify_failed(ref, why)
        elif kind is ErrorClass.REJECT:
            self.listener.on_order_rejected(ref, why)
        else:
            self.confirm_later(ref, why, f"ib_{code}")

    def confirm_later(self, ref: str, why: str, event: str) -> None:
        task = asyncio.ensure_future(self.confirm(ref, why, event))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def confirm(self, ref: str, why: str, event: str) -> None:
        """Ask IB whether the order still works (open orders) or ended (completed orders,
        or nowhere): only then does the trader hear it was rejected."""
        trade = self.trades.get(ref)
        perm = int(trade.order.permId or trade.orderStatus.permId) if trade is not None else 0
        to = self.request_timeout
        try:
            async with self.orders_lock:
                open_trades = await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), to)
                completed = await asyncio.wait_for(self.ib.reqCompletedOrdersAsync(False), to)
        except Exception as exc:
            log.warning("order %s: %s; IB could not confirm it (%r): reconciliation will", ref,
                        why, exc)  # fmt: skip
            return

        def status_in(trades: list[Trade], *, only_open: bool) -> str | None:
            for t in trades:
                same = t.order.permId == perm if perm else t.order.orderRef == ref
                if same and not (only_open and t.orderStatus.status in NOT_OPEN):
                    return str(t.orderStatus.status)
            return None

        open_status = status_in(open_trades, only_open=True)
        outcome = confirm_outcome(open_status, status_in(completed, only_open=False))
        if outcome is ErrorClass.NOTE:
            held = " (held)" if open_status == "Inactive" else ""
            self.listener.on_order_note(ref, event, f"{why}; IB still has the order{held}")
        else:
            self.kept.discard(ref)
            self.listener.on_order_rejected(ref, why)

"""The order enums have the kernel's int codes and the journal's state strings: the kernel
and the journal can switch to them without a single stored value changing."""

from __future__ import annotations

from momentumbot.domain.orders import DONE_STATES, OrderState, OrderStatus, Reason, Side
from momentumbot.engine import kernel as k
from momentumbot.execution import costs
from momentumbot.journal import journal as jr


def test_side_reason_and_status_are_the_kernel_codes() -> None:
    assert (Side.BUY, Side.SELL) == (costs.BUY, costs.SELL)
    assert [int(r) for r in Reason] == [k.R_ENTER, k.R_EXIT, k.R_REBALANCE, k.R_FLATTEN]
    assert tuple(r.label for r in Reason) == k.REASONS
    assert [int(s) for s in OrderStatus] == [
        k.S_WORKING, k.S_FILLED, k.S_PARTIAL, k.S_CANCELLED, k.S_REPLACED, k.S_SKIPPED,
    ]  # fmt: skip
    assert tuple(s.label for s in OrderStatus) == k.STATUSES
    # the CSV names are read back by index: every code names its own entry
    assert all(k.STATUSES[s] == s.label for s in OrderStatus)


def test_order_states_are_the_journal_strings() -> None:
    # what journals already on disk hold: these strings may never change
    stored = {
        "INTENT": "intent", "SENT": "sent", "WORKING": "working", "CANCEL_SENT": "cancel_sent",
        "FILLED": "filled", "CANCELLED": "cancelled", "REJECTED": "rejected",
        "SKIPPED": "skipped", "LOST": "lost",
    }  # fmt: skip
    assert {s.name: s.value for s in OrderState} == stored
    assert (jr.INTENT, jr.SENT, jr.WORKING, jr.FILLED, jr.LOST) == (
        "intent",
        "sent",
        "working",
        "filled",
        "lost",
    )
    assert set(DONE_STATES) == set(jr.DONE_STATES)
    assert OrderState.LOST.done and not OrderState.CANCEL_SENT.done
    assert OrderState("filled") == jr.FILLED  # a stored string reads back as the enum

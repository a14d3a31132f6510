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
    journal = {
        "INTENT": jr.INTENT, "SENT": jr.SENT, "WORKING": jr.WORKING,
        "CANCEL_SENT": jr.CANCEL_SENT, "FILLED": jr.FILLED, "CANCELLED": jr.CANCELLED,
        "REJECTED": jr.REJECTED, "SKIPPED": jr.SKIPPED, "LOST": jr.LOST,
    }  # fmt: skip
    assert {s.name: s.value for s in OrderState} == journal
    assert set(DONE_STATES) == set(jr.DONE_STATES)
    assert OrderState.LOST.done and not OrderState.CANCEL_SENT.done
    assert OrderState("filled") == jr.FILLED  # a stored string reads back as the enum

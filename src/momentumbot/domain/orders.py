"""Orders: side, reason, the engine's order status and the journal's order state, as enums.

The compiled kernel stores side, reason and status as small ints in its order table; these
enums have exactly those values (a test keeps them equal to `engine.kernel`'s codes), so the
kernel can map its codes here in one place and everything outside it can speak in names.
`OrderState` is the journal's lifecycle of an order at the broker (`journal.journal` stores
its string values)."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Side(IntEnum):
    """+1 buys, -1 sells (the sign of the position change)."""

    BUY = 1
    SELL = -1

    @property
    def label(self) -> str:
        return self.name


class Reason(IntEnum):
    """Why the engine decided an order (the name is what the CSV files show)."""

    ENTER = 0
    EXIT = 1
    REBALANCE = 2
    FLATTEN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class OrderStatus(IntEnum):
    """The engine's status of an order (kernel codes S_*)."""

    WORKING = 0
    FILLED = 1
    PARTIAL = 2
    CANCELLED = 3
    REPLACED = 4
    SKIPPED = 5

    @property
    def label(self) -> str:
        return "partially_filled" if self is OrderStatus.PARTIAL else self.name.lower()


class OrderState(StrEnum):
    """An order's state at the broker as the journal keeps it."""

    INTENT = "intent"  # written, not yet handed to the broker
    SENT = "sent"  # handed to the broker
    WORKING = "working"  # the broker acknowledged it
    CANCEL_SENT = "cancel_sent"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    SKIPPED = "skipped"  # never sent (cost filter, risk, decided while the bot was not running)
    LOST = "lost"  # the broker never had it and the engine no longer wants it

    @property
    def done(self) -> bool:
        return self in DONE_STATES


DONE_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.SKIPPED,
     OrderState.LOST}
)  # fmt: skip

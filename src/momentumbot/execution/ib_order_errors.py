"""IB's order errors, classified (for the IB broker adapter).

An error that carries an orderId does not always end the order at IB. ib_async marks the
order Cancelled locally for every error outside its short warning list, even when IB keeps
the order working (10349: TIF set to DAY by a preset; 10311: routed directly; 201 or 105 on a
modify: the original keeps working). So every order error is classified here into:

- INFO: farm and data messages that happen to carry the id (2100-2199, 10167): nothing;
- NOTE: the order keeps working (warnings, cancel confirmations, a cancel that crossed a fill);
- MODIFY_FAILED: a modification was refused; the original order keeps working;
- REJECT: the order itself was refused (201 "Order rejected", 200, 203, 103, 387 with no
  modification pending; 110, 321, 434 on an order IB never acknowledged): it is ended;
- CONFIRM: anything else (451, codes not listed here); the adapter asks IB (open and completed
  orders, by permId) before anything ends the order.

`confirm_outcome` turns what IB answered into NOTE (still working) or REJECT (ended)."""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    INFO = "info"
    NOTE = "note"
    MODIFY_FAILED = "modify_failed"
    REJECT = "reject"
    CONFIRM = "confirm"


# cancel confirmed (202), a cancel or modify that crossed a fill (104, 161, 10147, 10148):
# the order's own status messages follow
ORDER_NOTE_CODES = frozenset({104, 161, 202, 10147, 10148})
INFO_CODES = frozenset(range(2100, 2200)) | {10167}
# the order stays working at IB: order message warning (399), held for a short-sale locate
# (404), TIF set to DAY by an order preset (10349), directly routed (10311), and ib_async's
# own warning list (110 price increment on a modify, 165, 321 on a modify, 434, 492)
WARNING_CODES = frozenset({110, 165, 321, 399, 404, 434, 492, 10311, 10349})
# the order itself refused (when no modification of it is pending)
REJECT_CODES = frozenset({103, 200, 201, 203, 387})
# refusals of a new order that are warnings once IB has the order
NEW_ORDER_REJECT_CODES = frozenset({110, 321, 434})
# the codes IB sends for a modification it refused (the original order keeps working)
MODIFY_CODES = frozenset({104, 105, 110, 135, 201, 321, 329})


def classify(code: int, *, acknowledged: bool, modifying: bool) -> ErrorClass:
    """What an order error means for the order (see the module docstring).

    `acknowledged`: IB has reported the order (openOrder / orderStatus from the server);
    `modifying`: a modification of it was sent and not yet acknowledged."""
    if code in INFO_CODES:
        return ErrorClass.INFO
    if code in ORDER_NOTE_CODES:
        return ErrorClass.NOTE
    if modifying and code in MODIFY_CODES:
        return ErrorClass.MODIFY_FAILED
    if code in REJECT_CODES or (not acknowledged and code in NEW_ORDER_REJECT_CODES):
        return ErrorClass.REJECT
    if code in WARNING_CODES:
        return ErrorClass.NOTE
    return ErrorClass.CONFIRM


def confirm_outcome(open_status: str | None, completed_status: str | None) -> ErrorClass:
    """After an ambiguous error or an "Inactive": IB's open orders list it working (or held:
    NOTE), or its completed orders list it ended or nothing lists it (REJECT). A completed
    order that filled is a NOTE: its executions tell the rest."""
    if completed_status is not None:
        return ErrorClass.NOTE if completed_status.startswith("Filled") else ErrorClass.REJECT
    if open_status is not None:
        return ErrorClass.NOTE
    return ErrorClass.REJECT

"""The placeOrder request (message 3) read by explicit position at the session's server version:
`faProfile` follows `faPercentage` below 177 (ib_insync always sends it, ibapi and ib_async below
177), and everything after `whatIf` is ignored. Layout: ib_async 2.1.0 `client.placeOrder`,
docs/dev/tws-versions.md §4."""

from __future__ import annotations

from dataclasses import dataclass

from momentumbot.gateway.protocol import UNSET_DOUBLE, ContractSpec, Reader, RequestError


@dataclass(frozen=True)
class PlaceOrder:
    """What the gateway uses of a placeOrder request."""

    order_id: int
    contract: ContractSpec
    action: str
    qty: float
    order_type: str
    lmt: float | None
    aux: float | None
    tif: str
    account: str
    order_ref: str
    parent_id: int
    outside_rth: bool
    what_if: bool


def read_place_order(r: Reader, sv: int) -> PlaceOrder:
    """The request's fields up to `whatIf`: a RequestError if it ends before `outsideRth`; a
    request that ends between `hidden` and `whatIf` (a raw test client) is no what-if."""
    order_id = r.integer()
    c = r.contract()
    r.skip(2)  # secIdType, secId
    action = r.text()
    qty = r.number(0.0) or 0.0
    order_type = r.text()
    lmt = r.number(None)
    aux = r.number(None)
    tif = r.text()
    r.text()  # ocaGroup
    account = r.text()
    r.text()  # openClose
    r.integer()  # origin
    order_ref = r.text()
    r.flag()  # transmit
    parent_id = r.integer()
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.flag()
    try:
        r.flag()  # hidden
        what_if = _read_to_what_if(r, c.sec_type, sv)
    except RequestError:
        what_if = False
    return PlaceOrder(
        order_id, c, action, qty, order_type, lmt, aux, tif, account, order_ref, parent_id,
        outside_rth, what_if,
    )  # fmt: skip


def _read_to_what_if(r: Reader, sec_type: str, sv: int) -> bool:
    """The fields after `hidden` up to and including `whatIf`."""
    if sec_type.upper() == "BAG":
        r.skip(8 * r.integer())  # combo legs
        r.skip(r.integer())  # order combo legs
        r.skip(2 * r.integer())  # smart combo routing params
    r.skip(7)  # "", discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    if sv < 177:
        r.text()  # faProfile
    r.skip(22)  # modelCode .. volatilityType
    delta_neutral_type = r.text()
    r.text()  # deltaNeutralAuxPrice
    if delta_neutral_type:
        r.skip(8)
    r.skip(6)  # continuousUpdate .. scaleSubsLevelSize
    increment = r.number(None)  # scalePriceIncrement
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.text():  # hedgeType
        r.skip(1)  # hedgeParam
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.flag():  # delta-neutral contract
        r.skip(3)
    if r.text():  # algoStrategy
        r.skip(2 * r.integer())
    r.text()  # algoId
    return r.flag()

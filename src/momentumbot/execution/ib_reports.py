"""IB's objects as the broker port's values: executions, orders, positions and cash, as
ib_async hands them over (for the IB broker adapter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ib_async import Fill as IbFill
from ib_async import Trade

from momentumbot.domain.units import NS, usd_to_micro
from momentumbot.execution.broker_protocol import AccountStatus, ExecReport, Funds, OrderReport

LEDGERS = ("", "BASE")  # IB's currency field of account-wide values in a USD account, of sums

ORDER_DONE = {"Filled": "filled", "Cancelled": "cancelled", "ApiCancelled": "cancelled"}


def _side(action: str) -> int:
    return 1 if action.upper() in ("BUY", "BOT") else -1


def exec_report(fill: IbFill, trade: Trade | None, time_ns: int | None = None) -> ExecReport:
    """One execution (its commission if the report came with it); `time_ns` read from IB's raw
    text (ib_async's reading of it if None)."""
    ex = fill.execution
    ref = ex.orderRef or (trade.order.orderRef if trade is not None else "")
    cr = fill.commissionReport
    commission = usd_to_micro(cr.commission) if cr is not None and cr.execId else None
    return ExecReport(
        exec_id=ex.execId,
        order_ref=ref,
        perm_id=int(ex.permId),
        ib_order_id=int(ex.orderId),
        client_id=int(ex.clientId),
        account=ex.acctNumber,
        symbol=fill.contract.symbol,
        side=_side(ex.side),
        quantity=int(round(float(ex.shares))),
        price=float(ex.price),
        time_ns=time_ns if time_ns is not None else _ib_async_time_ns(ex.time),
        commission_micro=commission,
        replaces=corrected_ids(ex.execId),
    )


def corrected_ids(exec_id: str) -> tuple[str, ...]:
    """The execIds an execution corrects, if it is a correction: IB's execIds have four
    dot-separated parts, and a correction repeats the execution with the last one bumped
    ("0000e0d5.6552f6c3.01.02" replaces "...01.01")."""
    parts = exec_id.split(".")
    if len(parts) != 4 or not parts[3].isdigit():
        return ()
    head, last = ".".join(parts[:3]), parts[3]
    return tuple(f"{head}.{k:0{len(last)}d}" for k in range(1, int(last)))


def _ib_async_time_ns(t: Any) -> int:
    return int(t.timestamp() * NS) if t else 0


def order_report(trade: Trade, *, inactive: str = "cancelled") -> OrderReport:
    """One order: working, filled or cancelled (ended by IB counts as cancelled). IB's
    "Inactive" is either (rejected, or held): `inactive` says which the caller knows it to
    be (among open orders: held, "working"; among completed ones: "cancelled")."""
    o, s = trade.order, trade.orderStatus
    status = inactive if s.status == "Inactive" else ORDER_DONE.get(s.status, "working")
    why = ""
    if trade.log:
        why = trade.log[-1].message or ""
    return OrderReport(
        order_ref=o.orderRef or "",
        perm_id=int(o.permId or s.permId or 0),
        ib_order_id=int(o.orderId),
        client_id=int(o.clientId),
        symbol=trade.contract.symbol,
        side=_side(o.action),
        quantity=int(round(float(o.totalQuantity))),
        filled=int(round(float(s.filled))),
        status=status,
        ib_status=s.status,
        why=why,
    )


def cash_micro(summary: Iterable[Any], account: str) -> int | None:
    """The account's USD cash: TotalCashValue of a USD-base account, the USD ledger
    (CashBalance in USD) of another (stocks are bought and sold in USD, so the trades move
    that ledger only); None if absent."""
    values = list(summary)
    if base_currency(values, account) == "USD":
        return _micro(values, account, "TotalCashValue", ("USD", ""))
    return _micro(values, account, "CashBalance", ("USD",))


def _micro(
    values: Iterable[Any], account: str, tag: str, currencies: tuple[str, ...]
) -> int | None:
    for v in values:
        if v.tag == tag and v.account == account and v.currency in currencies:
            try:
                return usd_to_micro(float(v.value))
            except ValueError:
                return None
    return None


def base_currency(values: Iterable[Any], account: str) -> str:
    """The account's base currency: the currency of its account-wide values (NetLiquidation,
    TotalCashValue, SettledCash), or RealCurrency of its BASE ledger; USD if none says."""
    for v in values:
        if v.account != account:
            continue
        if v.tag == "RealCurrency" and v.value:
            return str(v.value).upper()
        wide = v.tag in ("NetLiquidation", "TotalCashValue", "SettledCash")
        if wide and v.currency and v.currency not in LEDGERS:
            return str(v.currency).upper()
    return "USD"


def base_per_usd(values: Iterable[Any], account: str, base: str) -> float | None:
    """IB's ExchangeRate of USD in the account: base-currency units per USD (1 for a USD
    base); None if not reported."""
    if base == "USD":
        return 1.0
    for v in values:
        if v.tag == "ExchangeRate" and v.account == account and v.currency == "USD":
            try:
                rate = float(v.value)
            except ValueError:
                return None
            return rate if rate > 0 else None
    return None


def funds(summary: Iterable[Any], account: str) -> Funds:
    """The USD ledger and the settled funds in the base currency (ib_async's account summary
    asks for `$LEDGER:ALL`, the ledger of every currency)."""
    values = list(summary)
    base = base_currency(values, account)
    return Funds(
        base_currency=base,
        usd_cash_micro=_micro(values, account, "CashBalance", ("USD",)),
        settled_base_micro=_micro(values, account, "SettledCash", (base, "")),
        base_per_usd=base_per_usd(values, account, base),
    )


def stock_avg_costs(positions: Iterable[Any], account: str) -> dict[str, float]:
    """IB's average cost per share of the account's stock positions (no zero ones)."""
    return {
        p.contract.symbol: float(p.avgCost)
        for p in positions
        if p.account == account and p.contract.secType in ("STK", "") and round(float(p.position))
    }


def settled_cash_micro(summary: Iterable[Any], account: str) -> int | None:
    """SettledCash in USD of the account summary (or values), None if absent."""
    return next(
        (
            usd_to_micro(float(v.value))
            for v in summary
            if v.tag == "SettledCash" and v.account == account and v.currency in ("USD", "")
        ),
        None,
    )


def account_status(values: Iterable[Any], account: str) -> AccountStatus:
    """The account's type (IB's TradingType-S: STKCASH is a cash account), net liquidation,
    previous day's equity, settled cash and DayTradesRemaining, from ib_async's account
    values; a non-USD base account's figures converted to USD with IB's ExchangeRate (None
    when it does not report one)."""
    values = list(values)
    base = base_currency(values, account)
    rate = base_per_usd(values, account, base)
    by_tag: dict[str, str] = {}
    for v in values:
        if v.account == account and v.currency in ("", base):  # account-wide: in the base
            by_tag.setdefault(v.tag, v.value)
    trading_type = by_tag.get("TradingType-S", "")
    kind = "" if not trading_type else ("cash" if trading_type.upper() == "STKCASH" else "margin")

    def usd(tag: str) -> int | None:
        try:
            amount = float(by_tag[tag])
        except (KeyError, ValueError):
            return None
        return usd_to_micro(amount / rate) if rate else None

    try:
        day_trades: int | None = int(float(by_tag["DayTradesRemaining"]))
    except (KeyError, ValueError):
        day_trades = None
    return AccountStatus(
        account_type=kind,
        net_liquidation_micro=usd("NetLiquidation"),
        settled_cash_micro=usd("SettledCash"),
        day_trades_remaining=day_trades,
        previous_day_equity_micro=usd("PreviousDayEquityWithLoanValue"),
        base_currency=base,
    )


def stock_positions(positions: Iterable[Any], account: str) -> dict[str, int]:
    """The account's stock positions by symbol (no zero ones)."""
    out: dict[str, int] = {}
    for p in positions:
        if p.account == account and p.contract.secType in ("STK", ""):
            q = int(round(float(p.position)))
            if q:
                out[p.contract.symbol] = q
    return out

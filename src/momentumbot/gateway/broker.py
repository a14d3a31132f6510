"""The gateway's exchange and accounts: working orders, fills by the shared fill rule
(execution.matching.match_in_bar), cash and positions per account. No I/O, no clock of its own."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from momentumbot.domain.units import MICRO, NS_PER_MINUTE, usd_to_micro
from momentumbot.execution.costs import BUY, SELL, CostParams, fill_price
from momentumbot.execution.matching import match_in_bar
from momentumbot.gateway.account_rules import (
    PDT_TEXT,
    USD,
    AccountRules,
    BaseCurrency,
    settled_cash_text,
)

PRICE_TOLERANCE = 1e-9
ORDER_TYPES = ("MKT", "LMT", "STP")
TIFS = ("DAY", "GTC", "IOC")
WORKING = ("PreSubmitted", "Submitted")


class OrderRejected(Exception):
    """The gateway refuses a request about an order; `code` is the IB error code."""

    def __init__(self, code: int, text: str, advanced_json: str = "") -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.advanced_json = advanced_json


class Bar(NamedTuple):
    """One closed 1-minute bar of one symbol."""

    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class OrderRequest:
    """A placeOrder as the gateway read it off the wire."""

    client_id: int
    order_id: int
    symbol: str
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool = False


@dataclass
class SimOrder:
    """One order at the simulated exchange."""

    perm_id: int
    client_id: int
    order_id: int
    account: str
    symbol: str
    side: int
    total_qty: int
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    order_ref: str
    outside_rth: bool
    placed_ns: int
    eligible_from_ns: int  # label of the first bar it may fill in
    exempt_from_cap: bool = False
    triggered: bool = False  # stop orders: the stop has been touched
    status: str = "PreSubmitted"
    filled: int = 0
    cum_value: float = 0.0  # sum of qty x price over fills (float, as the fill rule sees it)
    cum_rated: float = 0.0
    cum_value_micro: int = 0
    cum_commission_micro: int = 0
    last_fill_price: float = 0.0
    done_ns: int = 0
    why_done: str = ""

    @property
    def action(self) -> str:
        return "BUY" if self.side == BUY else "SELL"

    @property
    def remaining(self) -> int:
        return self.total_qty - self.filled if self.status in WORKING else 0

    @property
    def avg_fill_price(self) -> float:
        return self.cum_value / self.filled if self.filled else 0.0

    @property
    def is_working(self) -> bool:
        return self.status in WORKING


@dataclass(frozen=True)
class Fill:
    """One execution."""

    exec_id: str
    perm_id: int
    order_id: int
    client_id: int
    account: str
    symbol: str
    side: int
    qty: int
    price: float
    value_micro: int
    commission_micro: int
    realized_micro: int | None  # sells only: proceeds - commission - cost basis sold
    bar_ns: int  # label of the bar it filled in (its time)
    cum_qty: int
    avg_price: float
    order_ref: str

    @property
    def commission(self) -> float:
        return self.commission_micro / MICRO


@dataclass
class Position:
    qty: int = 0
    cost_micro: int = 0  # cost basis of the shares held, commissions included
    realized_micro: int = 0

    @property
    def avg_cost(self) -> float:
        return self.cost_micro / MICRO / self.qty if self.qty else 0.0


@dataclass
class Account:
    """Cash (exact micro-dollars) and positions of one account; long only, no margin (a
    margin account only differs by the pattern-day-trader rule, `rules`, and, with a non-USD
    base, by borrowing the USD its buys need against its base-currency cash).

    `cash_micro` is the USD ledger (stocks trade in USD); a non-USD base (`base`) also holds
    `base_cash_micro` in its own currency, which no trade moves."""

    name: str
    cash_micro: int
    positions: dict[str, Position] = field(default_factory=dict)
    month_shares: dict[tuple[int, int], float] = field(default_factory=dict)
    rules: AccountRules = field(default_factory=AccountRules)
    base: BaseCurrency = USD
    base_cash_micro: int = 0

    @property
    def settled_usd_micro(self) -> int:
        """The USD ledger's settled cash: a cash account's less today's sale proceeds."""
        if self.rules.is_cash:
            return self.rules.settled_micro(self.cash_micro)
        return self.cash_micro

    @property
    def buying_cash_micro(self) -> int:
        """What buys may spend (USD): the settled USD of a cash account (IB does not convert
        its other currencies), else all the cash, a non-USD base's converted at its rate (IB
        lends a margin account the USD)."""
        if self.rules.is_cash:
            return self.settled_usd_micro
        return self.cash_micro + self.base.to_usd(self.base_cash_micro)

    def equity_usd_micro(self, mark: Callable[[str], float]) -> int:
        """Cash of every ledger and positions at `mark`, in USD."""
        held = sum(usd_to_micro(p.qty * mark(sym)) for sym, p in self.held().items())
        return self.cash_micro + self.base.to_usd(self.base_cash_micro) + held

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position()
        return pos

    def held(self) -> dict[str, Position]:
        return {s: p for s, p in self.positions.items() if p.qty != 0}


class StatusChange(NamedTuple):
    order: SimOrder


class Execution(NamedTuple):
    order: SimOrder
    fill: Fill


Event = StatusChange | Execution


def floor_minute(ns: int) -> int:
    return ns - ns % NS_PER_MINUTE


class SimBroker:
    """Orders, fills and accounts of the gateway.

    Time enters only as arguments: `place` takes the server time, `on_bar_close` the label of
    the minute that just closed with the bars of every symbol that traded in it.
    """

    def __init__(
        self,
        accounts: Sequence[str],
        cash: Decimal | float,
        params: CostParams,
        cap_exempt_ref_prefix: str = "",
        first_perm_id: int = 1_000_001,
        account_types: Mapping[str, str] | None = None,
        base_currencies: Mapping[str, BaseCurrency] | None = None,
    ) -> None:
        if not accounts:
            raise ValueError("at least one account is needed")
        cash_micro = int(Decimal(str(cash)) * MICRO)
        types = account_types or {}
        bases = base_currencies or {}
        self.accounts = {}
        for a in accounts:
            base = bases.get(a, USD)
            acct = Account(
                a, cash_micro, rules=AccountRules(types.get(a, "margin")), base=base,
                base_cash_micro=int(base.cash * MICRO),
            )  # fmt: skip
            acct.rules.previous_equity_micro = acct.equity_usd_micro(lambda _s: 0.0)
            self.accounts[a] = acct
        self.params = params
        self.cap_exempt_ref_prefix = cap_exempt_ref_prefix
        self.orders: dict[int, SimOrder] = {}
        self._working: dict[int, SimOrder] = {}
        self.fills: list[Fill] = []
        self._live_ids: dict[tuple[int, int], int] = {}  # (clientId, orderId) -> permId
        self._next_perm_id = first_perm_id
        self._exec_seq = 0
        self.insufficient_funds_check = False
        self.last_close: dict[str, float] = {}

    # ---- orders

    def perm_id_of(self, client_id: int, order_id: int) -> int | None:
        return self._live_ids.get((client_id, order_id))

    def forget_done_ids(self) -> None:
        """A gateway restart forgets the ids of finished orders (ids can then be reused)."""
        self._live_ids = {k: p for k, p in self._live_ids.items() if p in self._working}

    def place(self, req: OrderRequest, now_ns: int, session_open: bool) -> tuple[SimOrder, bool]:
        """A new order, or a modification when (clientId, orderId) is already known.

        Returns (order, modified). Raises OrderRejected with the IB code.
        """
        perm = self._live_ids.get((req.client_id, req.order_id))
        account = req.account or next(iter(self.accounts))
        if account not in self.accounts:
            raise OrderRejected(
                201, f"Order rejected - reason:account {account} is not managed here"
            )
        action = req.action.upper()
        if action not in ("BUY", "SELL"):
            raise OrderRejected(201, f"Order rejected - reason:unsupported action {req.action!r}")
        side = BUY if action == "BUY" else SELL
        order_type = req.order_type.upper()
        if order_type not in ORDER_TYPES:
            raise OrderRejected(
                387, f"Unsupported order type {req.order_type!r}: use MKT, LMT or STP"
            )
        qty_f = req.total_qty
        if not (qty_f > 0) or qty_f != math.floor(qty_f):
            raise OrderRejected(
                201,
                f"Order rejected - reason:quantity must be a positive whole number, not {qty_f}",
            )
        qty = int(qty_f)
        tif = (req.tif or "DAY").upper()
        if tif not in TIFS:
            raise OrderRejected(
                201, f"Order rejected - reason:unsupported time in force {req.tif!r}"
            )
        if order_type == "LMT" and not _positive(req.lmt_price):
            raise OrderRejected(
                201, "Order rejected - reason:a limit order needs a positive lmtPrice"
            )
        if order_type == "STP" and not _positive(req.aux_price):
            raise OrderRejected(
                201, "Order rejected - reason:a stop order needs a positive auxPrice"
            )

        if perm is not None:
            order = self.orders[perm]
            if not order.is_working:
                raise OrderRejected(
                    104, f"Cannot modify a filled order (order {req.order_id} is {order.status})"
                )
            if order.symbol != req.symbol or order.side != side or order.account != account:
                raise OrderRejected(
                    105,
                    "Order being modified does not match original order (symbol, side or account)",
                )
            if qty < order.filled:
                raise OrderRejected(
                    201,
                    f"Order rejected - reason:quantity {qty} is below the {order.filled} already filled",
                )
            order.total_qty = qty
            order.order_type = order_type
            order.lmt_price = req.lmt_price if order_type == "LMT" else None
            order.aux_price = req.aux_price if order_type == "STP" else None
            order.tif = tif
            order.order_ref = req.order_ref
            order.outside_rth = req.outside_rth
            order.eligible_from_ns = max(order.eligible_from_ns, floor_minute(now_ns))
            order.exempt_from_cap = self._exempt(req.order_ref)
            if qty == order.filled:
                self._finish(
                    order, "Filled", now_ns, "filled (quantity lowered to the filled amount)"
                )
            return order, True

        if self.insufficient_funds_check and side == BUY:
            self._check_funds(account, req.symbol, qty)
        order = SimOrder(
            perm_id=self._next_perm_id,
            client_id=req.client_id,
            order_id=req.order_id,
            account=account,
            symbol=req.symbol,
            side=side,
            total_qty=qty,
            order_type=order_type,
            lmt_price=req.lmt_price if order_type == "LMT" else None,
            aux_price=req.aux_price if order_type == "STP" else None,
            tif=tif,
            order_ref=req.order_ref,
            outside_rth=req.outside_rth,
            placed_ns=now_ns,
            eligible_from_ns=floor_minute(now_ns),
            exempt_from_cap=self._exempt(req.order_ref),
            status="Submitted" if session_open else "PreSubmitted",
        )
        self._next_perm_id += 1
        self.orders[order.perm_id] = order
        self._working[order.perm_id] = order
        self._live_ids[(req.client_id, req.order_id)] = order.perm_id
        return order, False

    def _exempt(self, order_ref: str) -> bool:
        prefix = self.cap_exempt_ref_prefix
        return bool(prefix) and order_ref.startswith(prefix)

    def _check_funds(self, account: str, symbol: str, qty: int) -> None:
        last = self.last_close.get(symbol)
        if last is None:
            return
        acct = self.accounts[account]
        committed = sum(
            (o.total_qty - o.filled) * self.last_close.get(o.symbol, 0.0)
            for o in self.orders.values()
            if o.is_working and o.account == account and o.side == BUY
        )
        need = qty * last
        have = acct.cash_micro / MICRO - committed
        if need > have:
            text = (
                "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
                f"POSITION YOUR AVAILABLE FUNDS [{have:.2f} USD] MUST EXCEED THE ORDER VALUE "
                f"[{need:.2f} USD]"
            )
            raise OrderRejected(201, text, '{"reason":"insufficient funds"}')

    def check_account_rules(
        self, account: str, symbol: str, action: str, qty: float, mark: Callable[[str], float]
    ) -> None:
        """A new buy against the account's rules (`account_rules`): a cash account may not buy
        beyond its settled USD cash (less its working buys), at the last close, whatever it
        holds in another currency; a margin account whose previous day's equity was under
        25,000 USD with no day trade left may not open a position. Raises OrderRejected."""
        acct = self.accounts.get(account or next(iter(self.accounts)))
        if acct is None or action.upper() != "BUY":
            return
        if acct.rules.is_cash:
            committed = sum(
                (o.total_qty - o.filled) * mark(o.symbol)
                for o in self._working.values()
                if o.account == acct.name and o.side == BUY
            )
            have = acct.buying_cash_micro / MICRO - committed
            need = float(qty) * mark(symbol)
            if need > have + PRICE_TOLERANCE:
                raise OrderRejected(201, settled_cash_text(have - need, acct.name))
            return
        if acct.rules.day_trades_remaining(acct.equity_usd_micro(mark)) == 0:
            raise OrderRejected(201, PDT_TEXT)

    def cancel(self, client_id: int, order_id: int, now_ns: int) -> SimOrder:
        perm = self._live_ids.get((client_id, order_id))
        if perm is None:
            raise OrderRejected(
                10147, f"OrderId {order_id} that needs to be cancelled is not found."
            )
        order = self.orders[perm]
        if not order.is_working:
            raise OrderRejected(
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
            )
        self._finish(order, "Cancelled", now_ns, "cancelled")
        return order

    def cancel_all(self, now_ns: int) -> list[SimOrder]:
        out = sorted(self._working.values(), key=lambda o: o.perm_id)
        for o in out:
            self._finish(o, "Cancelled", now_ns, "global cancel")
        return out

    def _finish(self, order: SimOrder, status: str, now_ns: int, why: str) -> None:
        order.status = status
        order.done_ns = now_ns
        order.why_done = why
        self._working.pop(order.perm_id, None)

    def working(self) -> list[SimOrder]:
        return sorted(self._working.values(), key=lambda o: o.perm_id)

    def working_symbols(self) -> set[str]:
        return {o.symbol for o in self._working.values()}

    # ---- the market

    def on_session_open(self) -> list[Event]:
        """PreSubmitted orders go live at the open; yesterday's sale proceeds have settled."""
        for acct in self.accounts.values():
            acct.rules.on_session_open()
        out: list[Event] = []
        for o in self.working():
            if o.status == "PreSubmitted":
                o.status = "Submitted"
                out.append(StatusChange(o))
        return out

    def on_session_close(self, now_ns: int) -> list[Event]:
        """DAY (and leftover IOC) orders expire at the close."""
        out: list[Event] = []
        for o in self.working():
            if o.tif in ("DAY", "IOC"):
                self._finish(o, "Cancelled", now_ns, "expired at the close")
                out.append(StatusChange(o))
        return out

    def on_bar_close(
        self, label_ns: int, bars: Mapping[str, Bar], month: tuple[int, int]
    ) -> list[Event]:
        """Fill working orders in the bars labelled `label_ns` (each symbol's bar, if it traded).

        Per account: sells first, then buys, each in order-id order (the gateway's permId,
        i.e. the order in which orders arrived); every order may fill only in bars from the one
        after the latest closed bar at the time it was placed.
        """
        for sym, bar in bars.items():
            self.last_close[sym] = bar.close
        events: list[Event] = []
        eligible = [
            o for o in self._working.values() if o.symbol in bars and o.eligible_from_ns <= label_ns
        ]
        if not eligible:
            return events
        eligible.sort(key=lambda o: (o.side != SELL, o.perm_id))
        for order in eligible:
            bar = bars[order.symbol]
            fill_now = self._triggered(order, bar, label_ns)
            if fill_now:
                ev = self._match(order, bar, label_ns, month)
                if ev is not None:
                    events.append(ev)
            if order.is_working and order.tif == "IOC":
                self._finish(order, "Cancelled", label_ns + NS_PER_MINUTE, "IOC remainder")
                events.append(StatusChange(order))
        return events

    def _triggered(self, order: SimOrder, bar: Bar, label_ns: int) -> bool:
        """May this order fill at this bar's open? Stops trigger on a touch of the stop price:
        at the open they fill in this bar, inside the bar they become market orders from the next."""
        if order.order_type != "STP" or order.triggered:
            return True
        stop = order.aux_price
        assert stop is not None
        if order.side == BUY:
            at_open, touched = bar.open >= stop, bar.high >= stop
        else:
            at_open, touched = bar.open <= stop, bar.low <= stop
        if at_open:
            order.triggered = True
            return True
        if touched:
            order.triggered = True
            order.eligible_from_ns = label_ns + NS_PER_MINUTE
        return False

    def _match(
        self, order: SimOrder, bar: Bar, label_ns: int, month: tuple[int, int]
    ) -> Execution | None:
        p = self.params
        if order.order_type == "LMT":
            assert order.lmt_price is not None
            price = fill_price(bar.open, order.side, p)
            if order.side == BUY and price > order.lmt_price + PRICE_TOLERANCE:
                return None
            if order.side == SELL and price < order.lmt_price - PRICE_TOLERANCE:
                return None
        acct = self.accounts[order.account]
        pos = acct.position(order.symbol)
        month_shares = acct.month_shares.get(month, 0.0)
        qty, price, value_micro, commission_micro, rated = match_in_bar(
            order.side,
            order.total_qty - order.filled,
            pos.qty,
            bar.open,
            bar.volume,
            order.exempt_from_cap,
            acct.buying_cash_micro,
            month_shares,
            float(order.filled),
            order.cum_value,
            order.cum_rated,
            p,
        )
        if qty <= 0:
            return None
        realized: int | None = None
        if order.side == BUY:
            acct.cash_micro -= value_micro + commission_micro
            pos.cost_micro += value_micro + commission_micro
            pos.qty += qty
        else:
            acct.cash_micro += value_micro - commission_micro
            sold_cost = round(pos.cost_micro * qty / pos.qty)
            realized = value_micro - commission_micro - sold_cost
            pos.cost_micro -= sold_cost
            pos.qty -= qty
            pos.realized_micro += realized
        acct.month_shares[month] = month_shares + qty
        acct.rules.on_fill(order.symbol, order.side == BUY, value_micro - commission_micro)
        order.filled += qty
        order.cum_value += qty * price
        order.cum_rated += rated
        order.cum_value_micro += value_micro
        order.cum_commission_micro += commission_micro
        order.last_fill_price = price
        if order.filled >= order.total_qty:
            self._finish(order, "Filled", label_ns, "filled")
        self._exec_seq += 1
        fill = Fill(
            exec_id=f"0000{order.perm_id:08x}.{label_ns // 1_000_000_000:08x}.{self._exec_seq:02d}.01",
            perm_id=order.perm_id,
            order_id=order.order_id,
            client_id=order.client_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            value_micro=value_micro,
            commission_micro=commission_micro,
            realized_micro=realized,
            bar_ns=label_ns,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
        )
        self.fills.append(fill)
        return Execution(order, fill)

    # ---- valuation

    def net_liquidation_micro(self, account: str, marks: Mapping[str, float]) -> int:
        acct = self.accounts[account]
        value = acct.cash_micro
        for sym, pos in acct.held().items():
            value += usd_to_micro(pos.qty * marks.get(sym, 0.0))
        return value

    def fills_of(
        self, client_id: int | None = None, accounts: Iterable[str] | None = None
    ) -> list[Fill]:
        keep = set(accounts) if accounts is not None else None
        return [
            f
            for f in self.fills
            if (client_id is None or f.client_id == client_id)
            and (keep is None or f.account in keep)
        ]


def _positive(x: float | None) -> bool:
    return x is not None and x > 0 and math.isfinite(x)


def warm_up_fill_model(params: CostParams | None = None) -> None:
    """Compile (or load from numba's cache) every compiled function the fills use, so the
    first fill of a replay does not stall the clock. Called before the clock starts."""
    from momentumbot.config.schema import ExecutionConfig
    from momentumbot.execution.costs import cost_params, estimate_commission

    p = params if params is not None else cost_params(ExecutionConfig())
    for side in (BUY, SELL):
        fill_price(100.0, side, p)
        estimate_commission(side, 100.0, 100.0, 0.0, p)
        match_in_bar(side, 100, 100, 100.0, 1_000.0, False, 10**12, 0.0, 0.0, 0.0, 0.0, p)

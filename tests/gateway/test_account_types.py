"""Account types in the gateway's exchange (SimBroker, then over TCP): a cash account's sale proceeds settle at
the next session's open and a buy beyond the settled cash is refused with IB's 201; a margin
account under 25,000 USD counts day trades over five sessions and refuses opening orders after
the third with IB's "potential pattern day trader" 201; the account values say so."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ib_async import MarketOrder

from momentumbot.config.schema import ExecutionConfig
from momentumbot.domain.units import MICRO, NS_PER_MINUTE
from momentumbot.execution.costs import cost_params
from momentumbot.gateway.account_rules import AccountRules
from momentumbot.gateway.broker import Bar, OrderRejected, OrderRequest, SimBroker
from tests.gateway.conftest import (
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)

P = cost_params(ExecutionConfig())
ACCT = "DU0000001"
BAR = Bar(10.0, 10.0, 10.0, 10.0, 1_000_000.0)
T0 = 1_700_000_000 * 1_000_000_000


def _broker(kind: str, cash: float) -> SimBroker:
    b = SimBroker([ACCT], cash, P, account_types={ACCT: kind})
    b.on_session_open()
    return b


class Market:
    """Places market orders and closes one-minute bars at 10.00 for them."""

    def __init__(self, broker: SimBroker) -> None:
        self.b = broker
        self.t = T0
        self.oid = 0

    def mark(self, _symbol: str) -> float:
        return 10.0

    def order(self, action: str, qty: int, symbol: str = "AAA") -> None:
        """Checked as the orders desk checks a new order, placed, and filled in the next bar."""
        self.oid += 1
        self.b.check_account_rules(ACCT, symbol, action, qty, self.mark)
        req = OrderRequest(1, self.oid, symbol, action, qty, "MKT", None, None, "GTC", ACCT, "")
        self.b.place(req, self.t, session_open=True)
        self.t += NS_PER_MINUTE
        self.b.on_bar_close(self.t, {symbol: BAR}, (2024, 1))

    def next_session(self) -> None:
        self.t += 24 * 60 * NS_PER_MINUTE
        self.b.on_session_open()


def _settled(b: SimBroker) -> float:
    return b.accounts[ACCT].buying_cash_micro / MICRO


def test_cash_account_proceeds_settle_at_the_next_open() -> None:
    m = Market(_broker("cash", 10_000))
    m.order("BUY", 500)  # ~5,000 USD
    after_buy = _settled(m.b)
    assert after_buy < 5_000
    m.order("SELL", 500)
    acct = m.b.accounts[ACCT]
    assert acct.cash_micro / MICRO > 9_900  # the proceeds are cash ...
    assert _settled(m.b) == after_buy  # ... but not settled
    with pytest.raises(OrderRejected) as exc:
        m.order("BUY", 600)  # 6,000 USD > the settled ~4,990
    assert exc.value.code == 201
    assert "INSUFFICIENT SETTLED CASH" in exc.value.text
    m.order("BUY", 400)  # within the settled cash
    m.next_session()
    assert _settled(m.b) == acct.cash_micro / MICRO  # yesterday's proceeds settled
    m.order("SELL", 400)
    m.order("BUY", 500)  # the settled cash of today's open


def test_cash_account_counts_working_buys_against_settled_cash() -> None:
    b = _broker("cash", 10_000)
    mark = lambda _s: 10.0  # noqa: E731
    b.check_account_rules(ACCT, "AAA", "BUY", 600, mark)
    b.place(OrderRequest(1, 1, "AAA", "BUY", 600, "MKT", None, None, "GTC", ACCT, ""), T0, True)
    with pytest.raises(OrderRejected):
        b.check_account_rules(ACCT, "BBB", "BUY", 500, mark)  # 6,000 + 5,000 > 10,000
    b.check_account_rules(ACCT, "BBB", "SELL", 500, mark)  # sells are never refused here


def test_margin_account_under_25k_after_three_day_trades_refuses_opening_orders() -> None:
    m = Market(_broker("margin", 20_000))
    rules = m.b.accounts[ACCT].rules
    for sym in ("AAA", "BBB", "CCC"):
        m.order("BUY", 100, sym)
        m.order("SELL", 100, sym)
    assert rules.day_trades_in_window() == 3
    with pytest.raises(OrderRejected) as exc:
        m.order("BUY", 100, "DDD")
    assert exc.value.code == 201
    assert "Potential Pattern Day Trade" in exc.value.text
    # the window is five sessions: the fifth session after still refuses, the sixth opens
    for _ in range(4):
        m.next_session()
        with pytest.raises(OrderRejected):
            m.b.check_account_rules(ACCT, "DDD", "BUY", 100, m.mark)
    m.next_session()
    m.order("BUY", 100, "DDD")


def test_margin_account_of_25k_or_more_is_not_limited() -> None:
    m = Market(_broker("margin", 100_000))
    for sym in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        m.order("BUY", 100, sym)
        m.order("SELL", 100, sym)
    assert m.b.accounts[ACCT].rules.day_trades_in_window() == 5
    m.order("BUY", 100, "FFF")


def test_day_trade_counting() -> None:
    r = AccountRules("margin")
    r.on_session_open()
    r.on_fill("AAA", True, 0)
    r.on_fill("AAA", False, 0)  # buy, sell: one
    r.on_fill("AAA", False, 0)  # a second sell of the same buy: still one
    r.on_fill("BBB", False, 0)  # a sell of yesterday's position: none
    assert r.day_trades_in_window() == 1
    r.on_fill("AAA", True, 0)
    r.on_fill("AAA", False, 0)  # buy, sell again: two
    assert r.day_trades_remaining(20_000 * MICRO) == 1
    assert r.day_trades_remaining(25_000 * MICRO) == -1
    r.on_fill("CCC", True, 0)
    r.on_session_open()
    r.on_fill("CCC", False, 0)  # bought yesterday, sold today: not a day trade
    assert r.day_trades_in_window() == 2
    assert AccountRules("cash").day_trades_remaining(1) == -1
    with pytest.raises(ValueError):
        AccountRules("portfolio")


def test_a_cash_account_over_tcp_reports_settled_cash_and_refuses_a_buy_beyond_it(
    source: Any, ib_log: IbLogGuard
) -> None:
    """Through unmodified ib_async: TradingType-S STKCASH, TotalCashValue with the day's sale
    proceeds, SettledCash without them, and IB's 201 for a buy beyond the settled cash."""
    ib_log.expect(201)

    async def body() -> None:
        async with (
            gateway(source, account_type="cash", cash=Decimal(10_000)) as srv,
            connected(srv) as ib,
        ):
            assert _value(ib, "TradingType-S", "") == "STKCASH"
            assert _value(ib, "DayTradesRemaining", "") == "-1"
            c = (await qualified(ib, "MSFT"))[0]
            assert c is not None
            await srv.advance_to_time("09:40")
            price = srv.mark("MSFT")
            qty = int(6_000 // price)
            buy = ib.placeOrder(c, MarketOrder("BUY", qty))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: buy.orderStatus.status == "Filled", what="buy filled")
            sell = ib.placeOrder(c, MarketOrder("SELL", qty))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: sell.orderStatus.status == "Filled", what="sell filled")
            await wait_until(lambda: not ib.positions(), what="position gone")
            total = float(_value(ib, "TotalCashValue"))
            settled = float(_value(ib, "SettledCash"))
            assert total > 9_900 and settled < 4_100, (total, settled)
            assert float(_value(ib, "AvailableFunds")) == settled
            again = ib.placeOrder(c, MarketOrder("BUY", qty))  # ~6,000 USD > the settled cash
            await barrier(ib)
            await wait_until(lambda: again.orderStatus.status == "Cancelled", what="the 201")
            assert "INSUFFICIENT SETTLED CASH" in again.log[-1].message
            assert srv.broker.working() == []

    run(body())


def _value(ib: Any, tag: str, currency: str = "USD") -> str:
    vals = [v.value for v in ib.accountValues() if v.tag == tag and v.currency == currency]
    assert vals, f"no account value {tag}"
    return str(vals[-1])

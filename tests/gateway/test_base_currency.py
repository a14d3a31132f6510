"""A non-USD base account in the gateway (SimBroker, the values, then over TCP with unmodified
ib_async): account-wide values in the base currency, the cash ledgers per currency with IB's
ExchangeRate ($LEDGER groups in the account summary), a cash account that pays for US stock
from its USD ledger only (201 otherwise, whatever EUR it holds), a margin account that borrows
the USD; and the pattern-day-trader rule judged on the previous close's equity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ib_async import MarketOrder

from momentumbot.domain.errors import ConfigError
from momentumbot.domain.units import MICRO
from momentumbot.execution.ib_reports import account_status, cash_micro, funds
from momentumbot.gateway.account_rules import BaseCurrency
from momentumbot.gateway.account_values import account_values
from momentumbot.gateway.broker import OrderRejected, SimBroker
from momentumbot.gateway.cli import _base_currency
from tests.gateway.conftest import (
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)
from tests.gateway.test_account_types import ACCT, Market, P
from tests.gateway.test_ib_client import session_bars

MINUTE = 60 * 1_000_000_000
EUR = BaseCurrency("EUR", Decimal("0.92"), Decimal(50_000))


def _broker(kind: str, usd: float, base: BaseCurrency = EUR) -> SimBroker:
    b = SimBroker([ACCT], usd, P, account_types={ACCT: kind}, base_currencies={ACCT: base})
    b.on_session_open()
    return b


def _rows(b: SimBroker, mark: Any = lambda _s: 10.0) -> dict[tuple[str, str], str]:
    return {(k, c): v for k, v, c in account_values(b.accounts[ACCT], mark).rows()}


# ---------------------------------------------------------------- the exchange


def test_a_eur_cash_account_buys_us_stock_only_with_its_usd() -> None:
    m = Market(_broker("cash", 3_000))
    with pytest.raises(OrderRejected) as exc:  # 4,000 USD of stock; 50,000 EUR do not count
        m.order("BUY", 400)
    assert exc.value.code == 201
    assert "INSUFFICIENT SETTLED CASH" in exc.value.text and "USD for DU0000001" in exc.value.text
    m.order("BUY", 250)  # 2,500 USD: paid from the USD ledger
    acct = m.b.accounts[ACCT]
    assert acct.held()["AAA"].qty == 250
    assert 400 < acct.cash_micro / MICRO < 500
    assert acct.base_cash_micro == 50_000 * MICRO  # the EUR untouched


def test_a_eur_margin_account_borrows_the_usd_its_buys_need() -> None:
    m = Market(_broker("margin", 1_000))
    m.order("BUY", 400)  # 4,000 USD with 1,000 USD: IB lends the rest against the EUR
    acct = m.b.accounts[ACCT]
    assert acct.held()["AAA"].qty == 400
    assert acct.cash_micro < -2_900 * MICRO  # a USD loan
    assert acct.base_cash_micro == 50_000 * MICRO


def test_a_eur_accounts_values_are_in_eur_with_ledgers_per_currency() -> None:
    m = Market(_broker("cash", 3_000))
    m.order("BUY", 100)
    acct = m.b.accounts[ACCT]
    usd = acct.cash_micro / MICRO
    rows = _rows(m.b)
    total = 50_000 + usd * 0.92
    assert float(rows[("TotalCashValue", "EUR")]) == pytest.approx(total, abs=1e-6)
    assert float(rows[("NetLiquidation", "EUR")]) == pytest.approx(total + 1_000 * 0.92, abs=1e-6)
    assert float(rows[("SettledCash", "EUR")]) == pytest.approx(total, abs=1e-6)
    assert float(rows[("CashBalance", "USD")]) == pytest.approx(usd, abs=1e-6)
    assert float(rows[("CashBalance", "EUR")]) == 50_000
    assert float(rows[("CashBalance", "BASE")]) == pytest.approx(total, abs=1e-6)
    assert rows[("ExchangeRate", "USD")] == "0.92" and rows[("ExchangeRate", "EUR")] == "1"
    assert float(rows[("StockMarketValue", "USD")]) == 1_000
    assert rows[("RealCurrency", "BASE")] == "EUR"
    assert ("NetLiquidation", "USD") not in rows  # account-wide values only in the base
    values = account_values(acct, lambda _s: 10.0)
    only_usd = values.summary(("$LEDGER:USD",))
    assert {c for _, _, c in only_usd} == {"USD"} and (
        "CashBalance",
        rows[("CashBalance", "USD")],
        "USD",
    ) in only_usd
    assert {c for _, _, c in values.summary(("$LEDGER",))} == {"BASE"}
    every = values.summary(("NetLiquidation", "$LEDGER:ALL"))
    assert every[0][0] == "NetLiquidation" and {c for _, _, c in every[1:]} == {
        "BASE",
        "EUR",
        "USD",
    }


# ---------------------------------------------------------------- the previous day's equity


class Prices(Market):
    """Market orders filled at 10.00; positions marked at `prices` (default 10.00)."""

    def __init__(self, broker: SimBroker) -> None:
        super().__init__(broker)
        self.prices: dict[str, float] = {}

    def mark(self, symbol: str) -> float:
        return self.prices.get(symbol, 10.0)

    def close(self) -> None:
        """The session closes with the positions at `prices` (as the accounts desk does)."""
        acct = self.b.accounts[ACCT]
        acct.rules.on_session_close(acct.equity_usd_micro(self.mark))


def _three_day_trades(m: Market) -> None:
    for sym in ("AAA", "BBB", "CCC"):
        m.order("BUY", 100, sym)
        m.order("SELL", 100, sym)


def test_an_account_that_closed_above_25k_is_not_pdt_blocked_when_it_falls_below_intraday() -> None:
    m = Prices(_broker("margin", 27_000, BaseCurrency()))
    m.order("BUY", 1_000, "ZZZ")  # 10,000 USD held
    m.prices["ZZZ"] = 7.5  # ... worth 7,500 now: equity about 24,500 USD
    acct = m.b.accounts[ACCT]
    assert acct.equity_usd_micro(m.mark) < 25_000 * MICRO
    _three_day_trades(m)
    assert acct.rules.day_trades_in_window() == 3
    m.order("BUY", 100, "DDD")  # yesterday's equity (27,000) was above: no limit today
    assert acct.held()["DDD"].qty == 100
    rows = _rows(m.b, m.mark)
    assert rows[("DayTradesRemaining", "")] == "-1"
    assert float(rows[("PreviousDayEquityWithLoanValue", "USD")]) == 27_000
    # it closes below: the next session judges it on that close
    m.close()
    m.next_session()
    assert float(_rows(m.b, m.mark)[("PreviousDayEquityWithLoanValue", "USD")]) < 25_000
    with pytest.raises(OrderRejected) as exc:
        m.order("BUY", 100, "EEE")
    assert "Potential Pattern Day Trade" in exc.value.text


def test_an_account_that_closed_below_25k_is_blocked_though_it_is_above_now() -> None:
    m = Prices(_broker("margin", 24_000, BaseCurrency()))
    m.order("BUY", 1_000, "ZZZ")
    m.close()
    m.next_session()
    m.prices["ZZZ"] = 14.0  # worth 14,000 now: equity about 28,000 USD
    assert m.b.accounts[ACCT].equity_usd_micro(m.mark) > 25_000 * MICRO
    _three_day_trades(m)
    with pytest.raises(OrderRejected) as exc:
        m.order("BUY", 100, "DDD")
    assert "Potential Pattern Day Trade" in exc.value.text


# ---------------------------------------------------------------- over TCP


def test_a_eur_cash_account_over_tcp(source: Any, ib_log: IbLogGuard) -> None:
    """ib_async sees the values in EUR and the ledgers; the bot's adapter reads them in USD;
    a USD buy beyond the USD ledger gets 201, one within it fills from it."""
    ib_log.expect(201)

    async def body() -> None:
        base = BaseCurrency("EUR", Decimal("0.9"), Decimal(40_000))
        async with (
            gateway(source, account_type="cash", cash=Decimal(5_000), base_currency=base) as srv,
            connected(srv) as ib,
        ):
            values = ib.accountValues()
            by = {(v.tag, v.currency): v.value for v in values}
            assert float(by[("NetLiquidation", "EUR")]) == 44_500
            assert float(by[("CashBalance", "USD")]) == 5_000
            assert float(by[("CashBalance", "EUR")]) == 40_000
            assert by[("ExchangeRate", "USD")] == "0.9"
            st = account_status(values, "DU0000001")
            assert st.base_currency == "EUR" and st.net_liquidation_micro == 49_444_444_444
            summary = await ib.accountSummaryAsync("DU0000001")  # asks for $LEDGER:ALL
            f = funds(summary, "DU0000001")
            assert (f.base_currency, f.usd_cash_micro, f.base_per_usd) == (
                "EUR",
                5_000 * MICRO,
                0.9,
            )
            assert f.settled_base_micro == 44_500 * MICRO
            assert cash_micro(summary, "DU0000001") == 5_000 * MICRO
            c = (await qualified(ib, "MSFT"))[0]
            await srv.advance_to_time("09:40")
            price = srv.mark("MSFT")
            too_many = ib.placeOrder(c, MarketOrder("BUY", int(6_000 // price)))
            await barrier(ib)
            await wait_until(lambda: too_many.orderStatus.status == "Cancelled", what="the 201")
            assert "INSUFFICIENT SETTLED CASH" in too_many.log[-1].message
            qty = int(4_000 // price)
            buy = ib.placeOrder(c, MarketOrder("BUY", qty))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: buy.orderStatus.status == "Filled", what="buy filled")
            await wait_until(
                lambda: float(_value(ib, "CashBalance", "USD")) < 1_100, what="USD ledger"
            )
            assert float(_value(ib, "CashBalance", "EUR")) == 40_000
            assert srv.status()["accounts"]["DU0000001"]["eur_cash"] == "40000.000000"

    run(body())


def test_previous_day_equity_over_tcp_is_the_last_close(source: Any, ib_log: IbLogGuard) -> None:
    """A position held over the close: the next session reports the close's net liquidation
    as PreviousDayEquityWithLoanValue (the start's cash before)."""

    async def body() -> None:
        async with gateway(source, cash=Decimal(30_000)) as srv, connected(srv) as ib:
            assert float(_value(ib, "PreviousDayEquityWithLoanValue")) == 30_000
            c = (await qualified(ib, "MSFT"))[0]
            await srv.advance_to_time("09:40")
            buy = ib.placeOrder(c, MarketOrder("BUY", int(20_000 // srv.mark("MSFT"))))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: buy.orderStatus.status == "Filled", what="buy filled")
            await srv.advance_to_time("16:01")
            acct = srv.broker.accounts["DU0000001"]
            at_close = acct.equity_usd_micro(srv.mark)
            assert at_close != 30_000 * MICRO
            await srv.advance_to_time("09:31", day="2024-01-04")
            await barrier(ib)
            await wait_until(
                lambda: float(_value(ib, "PreviousDayEquityWithLoanValue")) == at_close / MICRO,
                what="PreviousDayEquityWithLoanValue at the open",
            )

    run(body())


def _deepest_drop(frames: dict[str, Any], day: str) -> tuple[str, int, int, float]:
    """The symbol, bar index to buy after (its next open) and later bar (its close) with the
    largest fall on `day` after 10:00, and that fall as a fraction."""
    best = ("", 0, 0, 0.0)
    for sym in frames:
        bars = session_bars(frames, sym, day)
        opens, closes = bars.open.to_numpy(), bars.close.to_numpy()
        for i in range(30, len(bars) - 30):
            j = i + 1 + int(closes[i + 1 :].argmin())
            fall = (opens[i + 1] - closes[j]) / opens[i + 1]
            if fall > best[3]:
                best = (sym, i, j, float(fall))
    return best


async def _filled(srv: Any, ib: Any, contract: Any, action: str, qty: int) -> None:
    trade = ib.placeOrder(contract, MarketOrder(action, qty))
    await barrier(ib)
    await srv.advance(120)
    await wait_until(lambda: trade.orderStatus.status == "Filled", what=f"{action} filled")


def test_over_tcp_a_day_above_25k_is_not_pdt_blocked_when_equity_falls_below_the_next_day(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    """A margin account closes a session above 25,000 USD; the next day, after three day
    trades, a position falls and takes the account under 25,000: a new buy still goes (IB
    judges the rule on the previous day's equity), DayTradesRemaining stays -1."""
    day = "2024-01-04"
    sym, buy_after, low_at, fall = _deepest_drop(bar_frames, day)
    assert fall > 0.015, "the data has a fall to test with"
    big = 20_000.0
    start_cash = 25_000 + big * fall / 2  # above 25,000 at the close, under it after the fall
    others = [s for s in bar_frames if s != sym]

    async def body() -> None:
        async with (
            gateway(source, cash=Decimal(str(round(start_cash, 2)))) as srv,
            connected(srv) as ib,
        ):
            await srv.advance_to_time("16:01")
            await srv.advance_to_time("09:31", day=day)
            contracts = dict(zip(bar_frames, await qualified(ib, *bar_frames), strict=True))
            for s in (others[0], others[1], others[0]):  # three day trades
                await _filled(srv, ib, contracts[s], "BUY", 10)
                await _filled(srv, ib, contracts[s], "SELL", 10)
            acct = srv.broker.accounts["DU0000001"]
            assert acct.rules.day_trades_in_window() == 3
            bars = session_bars(bar_frames, sym, day)
            await srv.advance_to(int(bars.ts.iloc[buy_after].value) + MINUTE)  # bar closed
            await _filled(srv, ib, contracts[sym], "BUY", int(big // srv.mark(sym)))
            await srv.advance_to(int(bars.ts.iloc[low_at].value) + MINUTE)
            assert acct.equity_usd_micro(srv.mark) < 25_000 * MICRO, "the account fell under"
            await wait_until(
                lambda: float(_value(ib, "NetLiquidation")) < 25_000, what="NetLiquidation"
            )
            assert _value(ib, "DayTradesRemaining", "") == "-1"
            assert float(_value(ib, "PreviousDayEquityWithLoanValue")) > 25_000
            await _filled(srv, ib, contracts[others[1]], "BUY", 10)  # an opening order: goes
            assert not [e for e in srv.record.events if e.get("event") == "reject"]

    run(body())


def _value(ib: Any, tag: str, currency: str = "USD") -> str:
    vals = [v.value for v in ib.accountValues() if v.tag == tag and v.currency == currency]
    assert vals, f"no account value {tag} {currency}"
    return str(vals[-1])


# ---------------------------------------------------------------- the options


def test_the_base_currency_options() -> None:
    assert _base_currency("eur", "0.92", "1000") == BaseCurrency(
        "EUR", Decimal("0.92"), Decimal(1000)
    )
    assert _base_currency("USD", "1", "0").is_usd
    for args in (("EUR", "0", "0"), ("EURO", "1", "0"), ("USD", "0.9", "0"), ("EUR", "x", "0")):
        with pytest.raises(ConfigError):
            _base_currency(*args)

"""The unmodified ib_async client against the gateway over TCP: connect, contracts, history,
streaming, orders, accounts."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, cast
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from ib_async import IB, Contract, LimitOrder, MarketOrder, Order, Stock, StopOrder

from momentumbot.config.schema import ExecutionConfig
from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import cost_params, order_commission
from momentumbot.gateway.clock import ManualClock
from momentumbot.gateway.market import stable_con_id
from tests.gateway.conftest import (
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)

NY = ZoneInfo("America/New_York")
P = cost_params(ExecutionConfig())


def session_bars(frames: dict[str, Any], symbol: str, day: str) -> pd.DataFrame:
    df = frames[symbol]
    local = df["ts"].dt.tz_convert(NY)
    return df[local.dt.date == pd.Timestamp(day).date()].reset_index(drop=True)


def ny(day: str, hhmm: str) -> dt.datetime:
    h, m = hhmm.split(":")
    return pd.Timestamp(day).to_pydatetime().replace(hour=int(h), minute=int(m), tzinfo=NY)


def value_of(ib: IB, tag: str) -> float:
    vals = [v.value for v in ib.accountValues() if v.tag == tag and v.currency == "USD"]
    assert vals, f"no account value {tag}"
    return float(vals[-1])


def test_connect_sync_and_server_time(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            assert ib.client.serverVersion() == 178
            assert ib.managedAccounts() == ["DU0000001"]
            now = await ib.reqCurrentTimeAsync()
            assert now == ny("2024-01-03", "09:00")
            assert value_of(ib, "NetLiquidation") == 100_000
            assert value_of(ib, "TotalCashValue") == 100_000
            assert value_of(ib, "BuyingPower") == 100_000
            summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
            assert float(summary["NetLiquidation"]) == 100_000
            assert ib.positions() == [] and ib.openTrades() == [] and ib.fills() == []
            assert ib.client.getReqId() >= 1

    run(body())


def test_qualify_contracts_stable_con_ids(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(200)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            aapl, nope = await ib.qualifyContractsAsync(
                Stock("AAPL", "SMART", "USD"), Stock("NOPE", "SMART", "USD")
            )
            assert nope is None
            assert isinstance(aapl, Contract) and aapl.conId == stable_con_id("AAPL")
            details = await ib.reqContractDetailsAsync(Stock("MSFT", "SMART", "USD"))
            assert len(details) == 1
            d = details[0]
            assert d.minTick == 0.01 and d.contract is not None
            assert d.contract.exchange == "SMART" and d.contract.currency == "USD"
            assert d.timeZoneId == "US/Eastern" and "20240103:0930-20240103:1600" in d.liquidHours
            by_id = await ib.reqContractDetailsAsync(Stock(conId=stable_con_id("MSFT")))
            assert by_id[0].contract is not None and by_id[0].contract.symbol == "MSFT"

    run(body())


def test_history_format_date_1_and_2(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    expected = session_bars(bar_frames, "AAPL", "2024-01-02")

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = Stock("AAPL", "SMART", "USD")
            utc = await ib.reqHistoricalDataAsync(
                c, "", "1 D", "1 min", "TRADES", True, formatDate=2
            )
            local = await ib.reqHistoricalDataAsync(
                c, "", "1 D", "1 min", "TRADES", True, formatDate=1
            )
            assert len(utc) == len(local) == len(expected) > 300
            for a, b, (_, row) in zip(utc, local, expected.iterrows(), strict=True):
                assert isinstance(a.date, dt.datetime) and isinstance(b.date, dt.datetime)
                assert a.date.tzinfo is not None and b.date.tzinfo is not None
                assert a.date == b.date == row["ts"].to_pydatetime()
                assert (a.open, a.high, a.low, a.close, a.volume) == (
                    row["open"], row["high"], row["low"], row["close"], row["volume"],
                )  # fmt: skip
            # 5-minute bars aggregate the same minutes; an explicit UTC end cuts the request
            five = await ib.reqHistoricalDataAsync(
                c, "", "2 D", "5 mins", "TRADES", True, formatDate=2
            )
            assert sum(b.volume for b in five) == expected["volume"].sum()
            assert five[0].date == ny("2024-01-02", "09:30")
            end = ny("2024-01-02", "10:00")
            cut = await ib.reqHistoricalDataAsync(
                c, end, "1800 S", "1 min", "TRADES", True, formatDate=2
            )
            assert cut[0].date >= ny("2024-01-02", "09:30") and cut[-1].date < end
            daily = await ib.reqHistoricalDataAsync(c, "", "5 D", "1 day", "TRADES", True)
            assert [b.date for b in daily] == [dt.date(2024, 1, 2)]
            assert daily[0].volume == expected["volume"].sum()
            assert daily[0].high == expected["high"].max()

    run(body())


def test_keep_up_to_date_streams_bars_as_they_close(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    today = session_bars(bar_frames, "MSFT", "2024-01-03")

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = Stock("MSFT", "SMART", "USD")
            bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            five = await ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "TRADES", True, 2, True)
            n0, n5 = len(bars), len(five)
            new_flags: list[bool] = []
            bars.updateEvent += lambda b, has_new: new_flags.append(has_new)
            await srv.advance_to_time(["09:31", "30"][0])  # 09:31: one bar closed
            await wait_until(lambda: len(bars) == n0 + 1, what="first bar")
            assert bars[-1].date == ny("2024-01-03", "09:30")
            for _ in range(9):
                await srv.advance(60)
            closed = today[today["ts"] < pd.Timestamp(ny("2024-01-03", "09:40"))]
            await wait_until(lambda: len(bars) == n0 + len(closed), what="ten bars")
            assert new_flags == [True] * len(closed)
            for got, (_, want) in zip(bars[n0:], closed.iterrows(), strict=True):
                assert got.date == want["ts"].to_pydatetime()
                assert (got.open, got.high, got.low, got.close, got.volume) == (
                    want["open"], want["high"], want["low"], want["close"], want["volume"],
                )  # fmt: skip
            # the 5-minute stream got exactly the two buckets that closed, none still forming
            await wait_until(lambda: len(five) == n5 + 2, what="two 5-minute bars")
            assert [b.date for b in five[n5:]] == [
                ny("2024-01-03", "09:30"),
                ny("2024-01-03", "09:35"),
            ]
            assert (
                five[-1].volume
                == closed[closed["ts"] >= pd.Timestamp(ny("2024-01-03", "09:35"))]["volume"].sum()
            )
            ib.cancelHistoricalData(bars)
            await barrier(ib)
            await srv.advance(60)
            await barrier(ib)
            assert len(bars) == n0 + len(closed)

    run(body())


def test_realtime_bars_and_ticks_come_from_the_minute_bars(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    today = session_bars(bar_frames, "SPY", "2024-01-03")
    first = today.iloc[0]

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "SPY"))[0]
            assert c is not None
            rt = ib.reqRealTimeBars(c, 5, "TRADES", True)
            ticker = ib.reqMktData(c)
            await barrier(ib)
            await srv.advance_to_time("09:31")
            await wait_until(lambda: len(rt) == 12, what="twelve 5-second bars")
            assert rt[0].time == first["ts"].to_pydatetime()
            assert rt[0].open_ == first["open"] and rt[-1].close == first["close"]
            assert (
                max(b.high for b in rt) == first["high"] and min(b.low for b in rt) == first["low"]
            )
            assert sum(b.volume for b in rt) == first["volume"]
            await wait_until(lambda: ticker.last == first["close"], what="last tick")
            assert ticker.bid == pytest.approx(first["close"] - 0.01)
            assert ticker.ask == pytest.approx(first["close"] + 0.01)
            assert ticker.volume == first["volume"]
            assert ticker.open == first["open"]
            ib.cancelMktData(c)
            ib.cancelRealTimeBars(rt)

    run(body())


def test_market_order_fills_in_parts_with_commissions(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    today = session_bars(bar_frames, "AAPL", "2024-01-03").set_index("ts")

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            await srv.advance_to_time("09:45")
            order = MarketOrder("BUY", 1500, orderRef="bot-0001")
            trade = ib.placeOrder(c, order)
            await wait_until(lambda: trade.orderStatus.status == "Submitted", what="submitted")
            while trade.orderStatus.status != "Filled":
                await srv.advance(60)
                await barrier(ib)
                assert srv.now_ns() < pd.Timestamp(ny("2024-01-03", "11:00")).value
            await wait_until(
                lambda: all(f.commissionReport.execId for f in trade.fills), what="commissions"
            )
            fills = trade.fills
            assert len(fills) > 1, "the volume cap must split this order"
            shares = 0
            value = 0.0
            cum_commission = 0
            for f in fills:
                e = f.execution
                bar = today.loc[pd.Timestamp(e.time)]
                assert e.shares <= int(0.10 * bar["volume"].item() + 1e-9)
                assert e.price == pytest.approx(bar["open"] + 0.01 + 1e-4 * bar["open"])
                assert e.orderRef == "bot-0001" and e.side == "BOT"
                shares += int(e.shares)
                value += e.shares * e.price
                cum_commission += round(f.commissionReport.commission * MICRO)
            assert shares == 1500
            # the commission of the whole order is the fixed schedule over what it filled
            assert cum_commission == pytest.approx(
                order_commission(1, 1500.0, value, 0.0, P) * MICRO, abs=2
            )
            await wait_until(lambda: bool(ib.positions()), what="position")
            pos = ib.positions()[0]
            assert pos.position == 1500 and pos.contract.conId == c.conId
            spent = sum(round(f.execution.shares * f.execution.price * MICRO) for f in fills)
            await wait_until(lambda: value_of(ib, "TotalCashValue") < 100_000, what="cash update")
            cash = value_of(ib, "TotalCashValue")
            assert round(cash * MICRO) == pytest.approx(
                100_000 * MICRO - spent - cum_commission, abs=len(fills)
            )
            assert ib.portfolio()[0].position == 1500
            assert trade.order.permId > 0 and trade.orderStatus.avgFillPrice == pytest.approx(
                value / 1500
            )

    run(body())


def test_sell_closes_position_and_reports_realized_pnl(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "MSFT"))[0]
            assert c is not None
            await srv.advance_to_time("09:40")
            buy = ib.placeOrder(c, MarketOrder("BUY", 100))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: buy.orderStatus.status == "Filled", what="buy filled")
            sell = ib.placeOrder(c, MarketOrder("SELL", 100))
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: sell.orderStatus.status == "Filled", what="sell filled")
            await wait_until(
                lambda: all(f.commissionReport.execId for f in sell.fills), what="report"
            )
            pnl = sum(f.commissionReport.realizedPNL for f in sell.fills)
            bought = sum(
                f.execution.shares * f.execution.price + f.commissionReport.commission
                for f in buy.fills
            )
            sold = sum(
                f.execution.shares * f.execution.price - f.commissionReport.commission
                for f in sell.fills
            )
            assert pnl == pytest.approx(sold - bought, abs=1e-4)
            await wait_until(lambda: not ib.positions(), what="position gone")
            assert value_of(ib, "TotalCashValue") == pytest.approx(
                100_000 + sold - bought, abs=1e-5
            )

    run(body())


def test_limit_order_rests_until_marketable_and_can_be_modified(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            await srv.advance_to_time("09:35")
            price = (await ib.reqHistoricalDataAsync(c, "", "600 S", "1 min", "TRADES", True))[
                -1
            ].close
            order = LimitOrder("BUY", 100, round(price * 0.9, 2), orderRef="lmt-1")
            trade = ib.placeOrder(c, order)
            await barrier(ib)
            for _ in range(5):
                await srv.advance(60)
            await barrier(ib)
            assert trade.orderStatus.status == "Submitted" and not trade.fills
            open_trades = await ib.reqOpenOrdersAsync()
            assert [t.order.orderRef for t in open_trades] == ["lmt-1"]
            # modify: same order id, a marketable price
            order.lmtPrice = round(price * 1.1, 2)
            ib.placeOrder(c, order)
            await barrier(ib)
            await srv.advance(120)
            await wait_until(lambda: trade.orderStatus.status == "Filled", what="filled")
            assert all(f.execution.price <= order.lmtPrice for f in trade.fills)
            assert (
                trade.order.orderId == order.orderId
                and len({f.execution.permId for f in trade.fills}) == 1
            )

    run(body())


def test_stop_order_triggers_on_a_touch(
    source: Any, bar_frames: dict[str, Any], ib_log: IbLogGuard
) -> None:
    today = session_bars(bar_frames, "SPY", "2024-01-03").set_index("ts")

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "SPY"))[0]
            assert c is not None
            await srv.advance_to_time("09:35")
            window = today[today.index < pd.Timestamp(ny("2024-01-03", "10:30"))]
            after = window[window.index >= pd.Timestamp(ny("2024-01-03", "09:35"))]
            stop = float(after["high"].max()) - 0.005  # touched at some bar after placement
            trade = ib.placeOrder(c, StopOrder("BUY", 10, stop))
            await barrier(ib)
            for _ in range(60):
                await srv.advance(60)
                if srv.broker.fills:  # the gateway filled it (its only order)
                    break
            await wait_until(lambda: trade.orderStatus.status == "Filled", what="stop filled")
            fill = trade.fills[0].execution
            t = pd.Timestamp(fill.time)
            earlier = after[after.index < t]
            touched = earlier[earlier["high"] >= stop]
            # it fills at the open of the bar after the first touch, or at an open beyond the stop
            assert len(touched) >= 1 or cast(float, after.loc[t, "open"]) >= stop

    run(body())


def test_cancel_global_cancel_and_completed_orders(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(202, 10147)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            await srv.advance_to_time("09:35")
            a = ib.placeOrder(c, LimitOrder("BUY", 10, 1.0, orderRef="a"))
            b = ib.placeOrder(c, LimitOrder("BUY", 10, 1.0, orderRef="b"))
            d = ib.placeOrder(c, LimitOrder("BUY", 10, 1.0, orderRef="d"))
            await wait_until(lambda: d.orderStatus.status == "Submitted", what="working")
            ib.cancelOrder(a.order)
            await wait_until(lambda: a.orderStatus.status == "Cancelled", what="cancelled")
            ib.reqGlobalCancel()
            await wait_until(lambda: b.isDone() and d.isDone(), what="global cancel")
            completed = await ib.reqCompletedOrdersAsync(False)
            assert sorted(t.order.orderRef for t in completed) == ["a", "b", "d"]
            assert all(t.orderStatus.status == "Cancelled" for t in completed)
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
            ib.client.cancelOrder(9999)
            await wait_until(lambda: 10147 in errors, what="unknown order error")

    run(body())


def test_day_order_expires_at_the_close(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            day = ib.placeOrder(c, LimitOrder("BUY", 10, 1.0, tif="DAY"))
            gtc = ib.placeOrder(c, LimitOrder("BUY", 10, 1.0, tif="GTC"))
            await barrier(ib)
            assert gtc.orderStatus.status == "PreSubmitted"
            await srv.advance_to_time("09:31")
            await wait_until(
                lambda: gtc.orderStatus.status == "Submitted", what="submitted at open"
            )
            await srv.advance_to_time("16:01")
            await wait_until(lambda: day.orderStatus.status == "Cancelled", what="expired")
            assert gtc.orderStatus.status == "Submitted"

    run(body())


def test_reconnect_recovers_executions_orders_and_positions(
    source: Any, ib_log: IbLogGuard
) -> None:
    async def body() -> None:
        async with gateway(source) as srv:
            async with connected(srv, client_id=7) as ib:
                c = (await qualified(ib, "AAPL"))[0]
                assert c is not None
                await srv.advance_to_time("09:35")
                filled = ib.placeOrder(c, MarketOrder("BUY", 50, orderRef="keep-1"))
                resting = ib.placeOrder(c, LimitOrder("BUY", 5, 1.0, orderRef="keep-2"))
                await barrier(ib)
                await srv.advance(120)
                await wait_until(lambda: filled.orderStatus.status == "Filled", what="filled")
                exec_ids = {f.execution.execId for f in filled.fills}
            await srv.advance(60)
            async with connected(srv, client_id=7) as ib2:
                assert {f.execution.execId for f in ib2.fills()} == exec_ids
                assert all(f.commissionReport.commission > 0 for f in ib2.fills())
                assert [p.position for p in ib2.positions()] == [50]
                refs = sorted(t.order.orderRef for t in ib2.openTrades())
                assert refs == ["keep-2"]
                ib2.cancelOrder(resting.order)  # ids of the previous connection still work
                assert ib2.client.getReqId() > resting.order.orderId
                ib_log.expect(202)
                await wait_until(lambda: not ib2.openTrades(), what="cancel after reconnect")

    run(body())


def test_unsupported_order_type_is_rejected(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(387)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            trade = ib.placeOrder(
                c, Order(action="BUY", totalQuantity=10, orderType="TRAIL", auxPrice=1)
            )
            await wait_until(lambda: trade.orderStatus.status == "Cancelled", what="rejected")

    run(body())


def test_running_clock_streams_at_speed_and_pauses(source: Any, ib_log: IbLogGuard) -> None:
    """A running clock follows the real clock (a manual one here, stepped by the test)."""

    async def body() -> None:
        real = ManualClock()
        async with (
            gateway(source, real, step_mode=False, speed=3600.0) as srv,
            connected(srv) as ib,
        ):
            c = Stock("AAPL", "SMART", "USD")
            bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2, True)
            n0 = len(bars)
            arrivals: list[tuple[dt.datetime, int]] = []
            bars.updateEvent += lambda b, new: arrivals.append((b[-1].date, srv.now_ns()))
            real.advance(0.7)  # 42 market minutes at x3600: 09:00 -> 09:42
            await wait_until(lambda: len(bars) >= n0 + 10, timeout=10, what="ten streamed bars")
            for date, seen_at in arrivals:
                assert seen_at >= int(pd.Timestamp(date).value) + 60_000_000_000, "only closed bars"
            t1 = await ib.reqCurrentTimeAsync()
            # the tenth bar closed at 09:40:00 at the earliest; server time is whole seconds
            assert t1 >= ny("2024-01-03", "09:40")
            srv.pause()
            frozen = srv.now_ns()
            real.advance(0.2)
            await barrier(ib)
            assert srv.now_ns() == frozen
            srv.set_speed(60.0)
            srv.resume()
            real.advance(0.2)
            await wait_until(lambda: srv.now_ns() != frozen, what="the clock runs again")
            assert 0 < srv.now_ns() - frozen < 30 * 1_000_000_000

    run(body())


def test_what_if_order_answers_without_placing(source: Any) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            c = (await qualified(ib, "AAPL"))[0]
            assert c is not None
            await srv.advance_to_time("09:40")
            price = srv.mark("AAPL")
            state = await asyncio.wait_for(ib.whatIfOrderAsync(c, MarketOrder("BUY", 300)), 5)
            assert state.commission == pytest.approx(
                order_commission(1, 300.0, 300 * price, 0.0, P), abs=1e-6
            )
            assert float(state.initMarginChange) == pytest.approx(300 * price, abs=0.01)
            assert float(state.equityWithLoanBefore) == 100_000
            assert srv.broker.orders == {} and ib.trades() == []
            # a real order right after still works
            trade = ib.placeOrder(c, MarketOrder("BUY", 10))
            await barrier(ib)
            assert trade.orderStatus.status == "Submitted" and len(srv.broker.orders) == 1

    run(body())

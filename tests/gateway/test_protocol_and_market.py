"""The wire codec and the market-data derivations, without sockets."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from ib_async.decoder import Decoder

from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.bars import BarArrays
from momentumbot.gateway import protocol as p
from momentumbot.gateway.market import (
    aggregate,
    assign_con_ids,
    duration_start,
    five_second_bars,
    parse_bar_size,
    parse_end_datetime,
    stable_con_id,
)

NS = 1_000_000_000
STOCK = p.StockInfo("AAPL", stable_con_id("AAPL"))
VIEW = p.OrderView(
    order_id=7, client_id=1, perm_id=1_000_001, stock=STOCK, action="BUY", total_qty=100,
    order_type="LMT", lmt_price=101.25, aux_price=None, tif="DAY", account="DU1", order_ref="ref-1",
    outside_rth=False, status="Submitted", filled=40, remaining=60, avg_fill_price=101.0,
    last_fill_price=101.0, completed_time="20240103 10:00:00 America/New_York", completed_status="Filled",
)  # fmt: skip


def fields_of(msg: bytes) -> list[str]:
    reader = p.FrameReader()
    reader.handshake_done = True
    (fields,) = reader.feed(msg)
    return fields


class Capture:
    """A wrapper stand-in that records what ib_async's decoder produced."""

    defaultTimezone = dt.UTC

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> object:
        def record(*args: object) -> None:
            self.calls.append((name, args))

        return record


def decode(msg: bytes) -> tuple[str, tuple[object, ...]]:
    cap = Capture()
    dec = Decoder(cap, 178)  # type: ignore[arg-type]
    errors: list[str] = []
    dec.logger.exception = lambda m, *a, **k: errors.append(m)
    dec.interpret(fields_of(msg))
    assert not errors, errors
    assert len(cap.calls) >= 1
    return cap.calls[-1]


def test_fmt_follows_ib_async_conventions() -> None:
    assert [p.fmt(v) for v in (True, False, None, p.UNSET_INTEGER, p.UNSET_DOUBLE, float("inf"), 1.5, 3, "x")] == [
        "1", "0", "", "", "", "Infinite", "1.5", "3", "x",
    ]  # fmt: skip


def test_frame_reader_handshake_then_messages_in_any_chunking() -> None:
    data = p.handshake_bytes() + p.frame([71, 2, 5, ""]) + p.frame([49, 1])
    for cut in range(1, len(data)):
        r = p.FrameReader()
        got = r.feed(data[:cut]) + r.feed(data[cut:])
        assert got == [["v157..178"], ["71", "2", "5", ""], ["49", "1"]]
    assert p.negotiate("v157..178") == 178 and p.negotiate("v100..200 +PACEAPI") == 178
    for bad in ("v100..156", "v179..200", "hello"):
        with pytest.raises(p.ProtocolError):
            p.negotiate(bad)
    with pytest.raises(p.ProtocolError):
        p.FrameReader().feed(b"GET ")


def test_every_order_and_execution_message_decodes_in_ib_async() -> None:
    name, (order_id, contract, order, state) = decode(p.msg_open_order(VIEW, sv=178))
    assert name == "openOrder" and order_id == 7
    assert len(fields_of(p.msg_open_order(VIEW, sv=178))) == 127
    assert (contract.symbol, contract.conId) == ("AAPL", STOCK.con_id)  # type: ignore[attr-defined]
    assert (order.orderRef, order.lmtPrice, order.totalQuantity, order.permId) == (  # type: ignore[attr-defined]
        "ref-1",
        101.25,
        100.0,
        1_000_001,
    )
    assert state.status == "Submitted"  # type: ignore[attr-defined]
    name, args = decode(p.msg_order_status(VIEW))
    assert name == "orderStatus" and args[:5] == (7, "Submitted", 40.0, 60.0, 101.0)
    name, (contract, order, state) = decode(p.msg_completed_order(VIEW, sv=178))
    assert name == "completedOrder" and state.completedStatus == "Filled"  # type: ignore[attr-defined]
    ex = p.ExecView(-1, 7, 1, 1_000_001, STOCK, "0001.02.01.01", "20240103 09:35:00 America/New_York",
                    "DU1", "BOT", 40, 101.0, 40, 101.0, "ref-1")  # fmt: skip
    name, (_req_id, contract, execution) = decode(p.msg_exec_details(ex, sv=178))
    assert name == "execDetails" and execution.orderRef == "ref-1" and execution.shares == 40  # type: ignore[attr-defined]
    assert execution.time == dt.datetime(2024, 1, 3, 14, 35, tzinfo=dt.UTC)  # type: ignore[attr-defined]
    name, (report,) = decode(p.msg_commission_report("0001.02.01.01", 1.0, None))
    assert name == "commissionReport" and report.commission == 1.0  # type: ignore[attr-defined]


def test_data_and_account_messages_decode_in_ib_async() -> None:
    assert decode(p.msg_contract_data(3, STOCK, "AAPL", "", "", sv=178))[0] == "contractDetails"
    assert (
        decode(p.msg_historical_update(3, p.BarRow("1704292200", 1, 2, 0.5, 1.5, 10, 1.2, 1)))[0]
        == "historicalDataUpdate"
    )
    assert decode(p.msg_realtime_bar(3, 1704292200, 1, 2, 0.5, 1.5, 10, 1.2, 1))[0] == "realtimeBar"
    assert decode(p.msg_tick_price(3, 4, 10.5, 100))[0] == "priceSizeTick"
    assert decode(p.msg_position("DU1", STOCK, 10, 9.5))[0] == "position"
    assert (
        decode(p.msg_portfolio(STOCK, 10, 10.0, 100.0, 9.5, 5.0, 0.0, "DU1"))[0]
        == "updatePortfolio"
    )
    assert decode(p.msg_error(-1, 2104, "ok", sv=178))[0] == "error"
    assert (
        decode(p.msg_historical_schedule(3, "a", "b", "US/Eastern", [("s", "e", "r")]))[0]
        == "historicalSchedule"
    )


def test_con_ids_are_stable_and_distinct() -> None:
    assert stable_con_id("AAPL") == stable_con_id("aapl") == 766005236
    ids = assign_con_ids([f"S{i:04d}" for i in range(5000)])
    assert len(set(ids.values())) == 5000


def test_five_second_bars_reproduce_the_minute() -> None:
    for o, h, low, c, v in [
        (10.0, 10.5, 9.8, 10.3, 1234.0),
        (10.0, 10.1, 9.0, 9.2, 7.0),
        (5, 5, 5, 5, 0),
    ]:
        bars = five_second_bars(60 * NS, o, h, low, c, v)
        assert len(bars) == 12 and bars[0].time_s == 60 and bars[-1].time_s == 115
        assert bars[0].open == o and bars[-1].close == c
        assert max(b.high for b in bars) == h and min(b.low for b in bars) == low
        assert sum(b.volume for b in bars) == v
        assert all(a.close == b.open for a, b in itertools.pairwise(bars))


def test_aggregation_aligns_to_the_session() -> None:
    cal = TradingCalendar("XNYS")
    g = cal.grid(cal.sessions("2024-01-03", "2024-01-03"))
    n = g.n_minutes
    ramp = np.arange(n, dtype=np.float64)
    bars = BarArrays(g.label_ns, 100 + ramp, 101 + ramp, 99 + ramp, 100.5 + ramp, np.full(n, 10.0))
    hourly = aggregate(bars, 60, cal, use_rth=True)
    starts = pd.DatetimeIndex(hourly.start).tz_localize("UTC").tz_convert("America/New_York")
    assert [t.strftime("%H:%M") for t in starts] == [
        "09:30",
        "10:00",
        "11:00",
        "12:00",
        "13:00",
        "14:00",
        "15:00",
    ]
    assert hourly.volume[0] == 300 and hourly.volume[1] == 600
    assert hourly.open[1] == bars.open[30] and hourly.close[1] == bars.close[89]
    daily = aggregate(bars, parse_bar_size("1 day"), cal, use_rth=True)
    assert len(daily) == 1 and daily.high[0] == bars.high.max() and daily.volume[0] == 3900


def test_end_and_duration_parsing() -> None:
    now = int(pd.Timestamp("2024-01-03 09:00", tz="America/New_York").value)
    assert parse_end_datetime("", now) == now
    utc = parse_end_datetime("20240102 15:00:00 UTC", now)
    assert utc == parse_end_datetime("20240102-15:00:00", now)
    assert utc == parse_end_datetime("20240102 10:00:00 America/New_York", now)
    assert utc == parse_end_datetime("20240102 10:00:00", now)
    with pytest.raises(ValueError):
        parse_end_datetime("yesterday", now)
    cal = TradingCalendar("XNYS")
    # before the open, "1 D" is the previous session; "2 D" reaches back over the New Year holiday
    assert duration_start("1 D", now, cal, True) == int(
        pd.Timestamp("2024-01-02 09:30", tz="America/New_York").value
    )
    assert duration_start("2 D", now, cal, True) == int(
        pd.Timestamp("2023-12-29 09:30", tz="America/New_York").value
    )
    assert duration_start("60 S", now, cal, True) == now - 60 * NS
    for bad in ("1", "x D", "1 Q", "-1 D"):
        with pytest.raises(ValueError):
            duration_start(bad, now, cal, True)
    with pytest.raises(ValueError):
        parse_bar_size("5 secs")

"""Execution times as IB writes them, read with each format's rule whatever the host's zone
(issue 12): the parsing rules, daylight-saving edges, and the IB adapter reading the raw text
of execDetails decoded by the unmodified ib_async under TZ=America/Chicago."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from momentumbot.execution.ib_broker import BrokerSettings, IbBroker
from momentumbot.execution.ib_exec_time import ExecTimes, parse_exec_time, tws_zone
from momentumbot.gateway import protocol as p
from momentumbot.gateway.market import stable_con_id

NY = tws_zone("America/New_York")


def utc(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


@pytest.mark.parametrize(
    ("text", "zone", "want"),
    [
        ("20240103 09:35:00 America/New_York", "Europe/London", "2024-01-03 14:35"),
        ("20240103 15:35:00 Europe/Berlin", "America/New_York", "2024-01-03 14:35"),
        ("20240103-14:35:00", "America/New_York", "2024-01-03 14:35"),  # UTC, live at 178
        ("20240703-13:35:00", "America/Chicago", "2024-07-03 13:35"),  # the TWS zone is moot
        ("20240103  09:35:00", "America/New_York", "2024-01-03 14:35"),  # the TWS login zone
        ("20240103 09:35:00", "America/New_York", "2024-01-03 14:35"),
        ("20240703  09:35:00", "America/New_York", "2024-07-03 13:35"),  # EDT
        ("20240103  08:35:00", "America/Chicago", "2024-01-03 14:35"),
        ("1704292500", "America/Chicago", "2024-01-03 14:35"),  # epoch seconds
    ],
)
def test_each_format_is_read_with_its_rule(text: str, zone: str, want: str) -> None:
    assert parse_exec_time(text, tws_zone(zone)) == utc(want)


def test_daylight_saving_edges_in_the_tws_zone() -> None:
    # spring forward (2024-03-10, 02:00 EST -> 03:00 EDT)
    assert parse_exec_time("20240310  01:59:59", NY) == utc("2024-03-10 06:59:59")
    assert parse_exec_time("20240310  03:00:00", NY) == utc("2024-03-10 07:00:00")
    # a time that does not exist is read with the offset before the change
    assert parse_exec_time("20240310  02:30:00", NY) == utc("2024-03-10 07:30:00")
    # fall back (2024-11-03, 02:00 EDT -> 01:00 EST): the hour that happens twice is the first
    assert parse_exec_time("20241103  00:59:59", NY) == utc("2024-11-03 04:59:59")
    assert parse_exec_time("20241103  01:30:00", NY) == utc("2024-11-03 05:30:00")
    assert parse_exec_time("20241103  02:00:00", NY) == utc("2024-11-03 07:00:00")
    # the dash format is UTC on both sides of a change
    assert parse_exec_time("20240310-06:59:59", NY) == utc("2024-03-10 06:59:59")
    assert parse_exec_time("20240310-07:00:00", NY) == utc("2024-03-10 07:00:00")


def test_unreadable_text_is_refused() -> None:
    for bad in ("", "yesterday", "20240103 09:35:00 Mars/Olympus", "2024-01-03T09:35", "a b c d"):
        with pytest.raises(ValueError):
            parse_exec_time(bad, NY)
    with pytest.raises(ValueError, match="unknown time zone"):
        tws_zone("Eastern")


@pytest.fixture
def in_chicago() -> Iterator[None]:
    """The test process's local zone is Chicago (as the bot's host would be), restored after."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Chicago"
    time.tzset()
    try:
        assert time.strftime("%Z") in ("CST", "CDT")
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


class Executions:
    def __init__(self) -> None:
        self.reports: list[Any] = []

    def on_execution(self, report: Any) -> None:
        self.reports.append(report)

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def exec_fields(exec_id: str, text: str) -> list[str]:
    stock = p.StockInfo("AAPL", stable_con_id("AAPL"))
    ex = p.ExecView(-1, 7, 1, 1_000_001, stock, exec_id, text, "DU1", "BOT", 40, 101.0, 40,
                    101.0, "enter:r:0")  # fmt: skip
    reader = p.FrameReader()
    reader.handshake_done = True
    (fields,) = reader.feed(p.msg_exec_details(ex, sv=178))
    return fields


@pytest.mark.usefixtures("in_chicago")
@pytest.mark.parametrize(
    ("text", "tws"),
    [
        ("20240103-14:35:00", "America/New_York"),
        ("20240103  09:35:00", "America/New_York"),
        ("20240103  06:35:00", "America/Los_Angeles"),
        ("20240103 09:35:00 America/New_York", "Asia/Tokyo"),
    ],
)
def test_the_ib_adapter_reads_the_raw_time_not_ib_asyncs_local_reading(text: str, tws: str) -> None:
    rec = Executions()
    broker = IbBroker(BrokerSettings(tws_timezone=tws), rec)
    decoder = broker.ib.client.decoder
    decoder.serverVersion = 178
    decoder.interpret(exec_fields("0001.01", text))
    (rep,) = broker.executions()  # what the bot books (live ones go through the same reading)
    assert rep.time_ns == utc("2024-01-03 14:35")
    assert rep.label_ns == utc("2024-01-03 14:35")  # the minute the backtest fills it in
    (fill,) = broker.ib.fills()
    if "/" not in text:  # what ib_async alone makes of a time without a zone: the host's zone
        assert fill.execution.time != dt.datetime(2024, 1, 3, 14, 35, tzinfo=dt.UTC)


def test_an_unreadable_raw_time_falls_back_to_ib_asyncs_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "momentumbot.trade")
    times = ExecTimes(NY)
    times.raw["x"] = "garbage"
    t = dt.datetime(2024, 1, 3, 14, 35, tzinfo=dt.UTC)
    assert times.time_ns("x", t) == utc("2024-01-03 14:35")
    assert times.time_ns("unknown", None) == 0
    assert "unreadable time 'garbage'" in caplog.text

"""Fill times off the server clock (issue 12): an execution time read in the wrong zone is
clamped to the server clock with a warning, so the fill is booked about when it happened, not
held pending for hours nor booked in a minute long gone (on the in-memory fake broker; the
bot against the real gateway under TZ=America/Chicago is in test_exec_time_zone.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.execution.broker_protocol import ExecReport
from momentumbot.trading import fill_clock as fc
from tests.trade.fake_run import fake_run

HOUR = 60 * NS_PER_MINUTE
T0 = 1_704_292_500 * 1_000_000_000  # 2024-01-03 14:35 UTC


def rep(time_ns: int) -> ExecReport:
    return ExecReport("e1", "enter:r:0", 1, 1, 1, "DU1", "AAA", 1, 10, 10.0, time_ns, None)


def test_a_time_within_bounds_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    r = rep(T0)
    assert fc.not_before_decision(r, T0 - NS_PER_MINUTE, T0) is r
    assert fc.not_after_server(r, T0 - 5 * NS_PER_MINUTE) is r  # the bot's clock may lag
    assert fc.not_after_server(r, 0) is r  # no server time known yet: nothing to hold it to
    assert not caplog.records


def test_a_time_far_from_the_server_clock_is_clamped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "momentumbot.trade")
    ahead = fc.not_after_server(rep(T0 + 6 * HOUR), T0 + 30_000_000_000)
    assert ahead.time_ns == T0 + 30_000_000_000  # the server clock learnt since
    ahead = fc.not_after_server(rep(T0 + 6 * HOUR), T0 + 90_000_000_000, T0)
    assert ahead.time_ns == T0  # the server clock when it arrived
    before = fc.not_before_decision(rep(T0 - HOUR), T0 - NS_PER_MINUTE, T0 + 1)
    assert before.time_ns == T0 + 1
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 3 and "ahead of the server clock" in msgs[0]
    assert "before its order was decided" in msgs[2] and "tws_timezone" in msgs[2]


@pytest.mark.parametrize("error_hours", [6, -6])
def test_fills_read_hours_off_are_booked_at_the_server_clock(
    error_hours: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "momentumbot.trade")
    error = error_hours * HOUR

    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            r.fake.exec_time_error_ns = error
            await r.run_to("11:00")
            await r.step(3)  # server times learnt after the last fill came
            session = r.trader.session
            assert session is not None
            book, e = session.fills, session.engine
            assert e.fill_count() > 0
            assert not book.pending, "no fill is held pending"
            for x in r.fake.executions:
                booked = int(e.fills.time_ns[book.fill_index[x.exec_id]])
                true_label = x.label_ns - error
                assert 0 <= booked - true_label <= 2 * NS_PER_MINUTE, x
            r.check_books()

    asyncio.run(body())
    why = "ahead of the server clock" if error_hours > 0 else "before its order was decided"
    assert any(why in rec.getMessage() for rec in caplog.records)

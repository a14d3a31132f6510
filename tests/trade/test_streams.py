"""Streams one by one, fast (no TCP): minutes made from 5-second bars, which symbols get a
stream and which real-time bars, the max_streams config error, and a symbol whose stream ends
or goes silent resubscribed alone while the others' minutes go on (on the in-memory broker)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from momentumbot.cli import main
from momentumbot.config.schema import BrokerConfig
from momentumbot.data.synthetic import default_symbols
from momentumbot.domain.errors import ConfigError
from momentumbot.domain.units import NS, NS_PER_MINUTE
from momentumbot.execution.five_second_minutes import FiveSecondMinutes
from momentumbot.gateway.market import five_second_bars
from momentumbot.trading.streams import plan_streams
from tests.trade.fake_run import DAY, SYMBOLS, config, fake_run, hhmm, ny
from tests.trade.harness import write_config

LABEL = 1_704_292_200 * NS  # 2024-01-03 14:30 UTC (09:30 New York)


def feed(agg: FiveSecondMinutes, label: int, o: float, h: float, lo: float, c: float, v: float):
    return [agg.add(f.time_s * NS, f.open, f.close, f.volume) for f in five_second_bars(label, o, h, lo, c, v)]  # fmt: skip


def test_five_second_bars_make_the_minute_the_stream_has() -> None:
    rng = np.random.default_rng(3)
    agg = FiveSecondMinutes()
    for k in range(200):
        o = round(float(rng.uniform(10, 500)), 2)
        c = round(o * float(rng.uniform(0.98, 1.02)), 2)
        h, lo = max(o, c) + 0.05, min(o, c) - 0.05
        v = float(rng.choice([1, 7, 11, 12, 13, 500, 12_345]))
        label = LABEL + k * NS_PER_MINUTE
        out = feed(agg, label, o, h, lo, c, v)
        assert all(b is not None and b.label_ns == label for b in out), "each revises the minute"
        last = out[-1]
        assert last is not None
        assert (last.open, last.close, last.volume) == (o, c, v), f"minute {k}, volume {v}"
        assert (out[0] is not None and out[0].volume < v) or v < 12  # a revision, not the minute


def test_only_the_revisions_that_matter_are_passed_on() -> None:
    """A minute's first 5-second bar (it closes the minute before) and its last (:55, the
    minute as it ended); a minute that ended without its :55 bar goes when the next begins."""
    agg = FiveSecondMinutes()
    fbs = five_second_bars(LABEL, 10.0, 10.4, 9.9, 10.2, 1200.0)
    sent = [agg.sends(f.time_s * NS, f.open, f.close, f.volume) for f in fbs]
    assert [len(x) for x in sent] == [1] + [0] * 10 + [1]
    assert sent[0][0].volume == 100.0 and (sent[-1][0].open, sent[-1][0].close) == (10.0, 10.2)
    assert sent[-1][0].volume == 1200.0
    nxt = five_second_bars(LABEL + NS_PER_MINUTE, 10.2, 10.3, 10.1, 10.25, 600.0)
    assert [len(agg.sends(f.time_s * NS, f.open, f.close, f.volume)) for f in nxt[:11]] == [1] + [
        0
    ] * 10
    third = five_second_bars(LABEL + 2 * NS_PER_MINUTE, 10.25, 10.3, 10.2, 10.3, 120.0)
    out = agg.sends(third[0].time_s * NS, third[0].open, third[0].close, third[0].volume)
    assert [b.label_ns for b in out] == [LABEL + NS_PER_MINUTE, LABEL + 2 * NS_PER_MINUTE]
    assert (out[0].close, out[0].volume) == (nxt[10].close, 550.0), "as it stood at :50"


def test_a_minute_joined_late_is_not_sent_and_older_bars_are_ignored() -> None:
    agg = FiveSecondMinutes()
    fbs = five_second_bars(LABEL, 10.0, 10.4, 9.9, 10.2, 1200.0)
    assert [agg.add(f.time_s * NS, f.open, f.close, f.volume) for f in fbs[3:]] == [None] * 9
    assert agg.partial_label == LABEL, "the minute joined 15 s in is left to the history"
    nxt = feed(agg, LABEL + NS_PER_MINUTE, 10.2, 10.3, 10.1, 10.25, 600.0)
    assert nxt[-1] is not None and (nxt[-1].open, nxt[-1].close, nxt[-1].volume) == (
        10.2, 10.25, 600.0,
    )  # fmt: skip
    assert agg.add(LABEL + 55 * NS, 1.0, 1.0, 5.0) is None, "an older minute is past"


def test_five_second_bars_without_trades_make_no_minute() -> None:
    agg = FiveSecondMinutes()
    assert all(agg.add(LABEL + 5 * k * NS, 10.0, 10.0, 0.0) is None for k in range(12))
    # the first traded 5-second bar gives the minute its open; quiet ones keep the last price
    agg.add(LABEL + NS_PER_MINUTE, 10.0, 10.0, 0.0)
    b = agg.add(LABEL + NS_PER_MINUTE + 5 * NS, 10.1, 10.3, 200.0)
    b = agg.add(LABEL + NS_PER_MINUTE + 10 * NS, 10.3, 10.3, 0.0) or b
    assert b is not None and (b.open, b.close, b.volume) == (10.1, 10.3, 200.0)


def test_which_symbols_get_streams_and_which_real_time_bars() -> None:
    syms = default_symbols(60)
    assert plan_streams(syms[:45], BrokerConfig(), quote_lines=True) == set()
    with pytest.raises(ConfigError) as exc:
        plan_streams(syms, BrokerConfig(), quote_lines=False)
    msg = str(exc.value)
    assert "60 symbols" in msg and "max_streams is 45" in msg
    assert 'beyond_max_streams = "realtime_bars"' in msg and "\n" not in msg
    b = BrokerConfig(beyond_max_streams="realtime_bars", max_streams=40)
    assert plan_streams(syms, b, quote_lines=False) == set(syms[40:])
    assert plan_streams(syms, b, quote_lines=True) == set(syms[40:]), "20 + 60 lines fit"
    with pytest.raises(ConfigError, match="max_market_data_lines is 100"):
        plan_streams(default_symbols(100), b, quote_lines=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_universe_past_max_streams_is_a_config_error_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "cfg.toml", default_symbols(50))
    out = tmp_path / "out"
    argv = ["trade", "--config", str(cfg), "--port", str(_free_port()), "--out", str(out)]
    code = main([*argv, "--no-console"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert 'beyond_max_streams = "realtime_bars"' in err and "50 symbols" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- on the in-memory broker


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_beyond_max_streams_the_rest_come_from_real_time_bars(tmp_path: Path) -> None:
    async def body() -> None:
        cfg = config(max_streams=4, beyond_max_streams="realtime_bars")
        async with fake_run(tmp_path / "out", cfg) as r:
            assert r.fake.subscribed == [(s, s in SYMBOLS[4:]) for s in SYMBOLS]
            await r.run_to("16:01")
            await r.stop()
            r.check_books()

    run(body())


def _watched(r: Any) -> str:
    """A symbol the health watch says trades every minute."""
    h = r.trader.session.health
    watched = [s for j, s in enumerate(SYMBOLS) if h.every_minute[j]]
    assert watched, "some synthetic symbol trades every minute"
    return watched[0]


def test_a_stream_cancelled_alone_is_resubscribed_alone(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config()) as r:
            await r.run_to("10:00")
            sym = _watched(r)
            before = list(r.fake.subscribed)
            r.fake.end_stream(sym)  # the broker says so (162)
            await r.step()  # every minute is stepped on time meanwhile (settle)
            await r.until(lambda: len(r.fake.subscribed) > len(before), "the resubscribe")
            assert r.fake.subscribed[len(before) :] == [(sym, False)]
            await r.step(3)
            j = r.trader.minutes.index[sym]
            assert r.trader.minutes.last_label[j] == r.fake.now_ns - NS_PER_MINUTE, "bars resume"
            assert r.trader.stats.stale_streams == 0, "no resync of every stream"
            await r.run_to("16:01")
            await r.stop()
            r.check_books()

    run(body())


def test_a_silent_symbol_that_trades_every_minute_is_resubscribed_alone(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out", config(stale_symbol_minutes=3.0)) as r:
            await r.run_to("10:00")
            sym = _watched(r)
            j = r.trader.minutes.index[sym]
            before = len(r.fake.subscribed)
            r.fake.end_stream(sym, tell=False)  # silence, without a word
            silent_from = r.fake.now_ns
            for _ in range(3):
                await r.step()  # the other symbols' minutes go on
                assert len(r.fake.subscribed) == before, "not before 3 quiet minutes"
            await r.step()
            await r.until(lambda: len(r.fake.subscribed) > before, "the resubscribe")
            assert r.fake.subscribed[before:] == [(sym, False)]
            assert hhmm(r.fake.now_ns) == "10:04" and silent_from == ny(DAY, "10:00")
            await r.step(2)
            assert r.trader.minutes.last_label[j] == r.fake.now_ns - NS_PER_MINUTE, "bars resume"
            assert r.trader.session is not None
            assert r.trader.session.health.resubscribed == 1
            assert r.trader.stats.stale_streams == 0
            await r.run_to("16:01")
            await r.stop()
            r.check_books()

    run(body())


def test_a_streams_own_error_is_told_with_its_symbol_and_ends_it() -> None:
    """162 / 10182 / 322 / 101 on a stream's request id: its symbol to `on_stream_lost` (101:
    no market data), the stream forgotten; other request ids and codes are not about it."""
    from ib_async import IB, BarDataList, RealTimeBarList

    from momentumbot.execution.ib_market import IbMarketData

    told: list[tuple[str, str, bool]] = []
    md = IbMarketData(
        IB(), {}, request_timeout=1, requests_per_minute=60, pacing_backoff=1, max_retries=1,
        on_stream_lost=lambda sym, why, no_data: told.append((sym, why, no_data)),
    )  # fmt: skip
    streams: dict[str, Any] = {"AAA": BarDataList(), "BBB": RealTimeBarList()}
    for req, (sym, s) in enumerate(streams.items(), start=7):
        s.reqId = req
        md._streams[sym] = s
        md._stream_req[req] = sym
    assert not md.on_error(99, 162, "not ours") and not md.on_error(7, 2104, "farm OK")
    assert md.on_error(7, 10182, "Failed to request live updates (disconnected).")
    assert md.on_error(8, 101, "Max number of tickers has been reached")
    assert [(s, no) for s, _, no in told] == [("AAA", False), ("BBB", True)]
    assert "10182" in told[0][1] and md._streams == {} and md._stream_req == {}


def test_a_minute_joined_late_gets_its_closed_bar_from_the_history_first() -> None:
    """reqRealTimeBars joined 15 s into a minute: that minute's 5-second bars are not passed
    on; when the next minute begins, its closed bar is asked of the history and passed on
    before the next minute's revisions (held meanwhile), so it is never stepped without it."""
    import datetime as dt

    from ib_async import BarData, RealTimeBar, RealTimeBarList

    from momentumbot.execution.ib_market import IbMarketData

    rt = RealTimeBarList()
    rt.reqId = 5
    history_asked: list[str] = []
    answer: asyncio.Future[list[BarData]] | None = None

    class FakeIb:
        def reqRealTimeBars(self, *args: Any) -> RealTimeBarList:
            return rt

        async def reqHistoricalDataAsync(self, contract: Any, **kw: Any) -> list[BarData]:
            history_asked.append(kw["durationStr"])
            assert answer is not None
            return await answer

    def utc(ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / NS, dt.UTC)

    async def body() -> None:
        nonlocal answer
        got: list[tuple[int, float, float]] = []
        md = IbMarketData(
            FakeIb(), {"AAA": object()}, request_timeout=1, requests_per_minute=60_000,  # type: ignore[arg-type,dict-item]
            pacing_backoff=1, max_retries=1,
        )  # fmt: skip
        md._realtime("AAA", lambda sym, b: got.append((b.label_ns, b.close, b.volume)))

        def bar(start_ns: int, close: float, volume: float) -> None:
            rt.append(RealTimeBar(utc(start_ns), -1, close, close, close, close, volume))
            rt.updateEvent.emit(rt, True)

        for k in range(3, 12):  # 09:30:15 .. 09:30:55
            bar(LABEL + 5 * k * NS, 10.0 + k / 100, 100.0)
        assert got == [] and history_asked == []
        answer = asyncio.get_running_loop().create_future()
        bar(LABEL + NS_PER_MINUTE, 11.0, 50.0)  # 09:31:00: the next minute begins
        await asyncio.sleep(0)
        assert history_asked == ["300 S"] and got == [], "held until the history answers"
        closed = BarData(utc(LABEL), 10.0, 10.2, 9.9, 10.11, 1200.0)
        answer.set_result([BarData(utc(LABEL - NS_PER_MINUTE), 9.9, 10, 9.8, 10.0, 10.0), closed])
        for _ in range(5):
            await asyncio.sleep(0)
        assert got == [(LABEL, 10.11, 1200.0), (LABEL + NS_PER_MINUTE, 11.0, 50.0)]
        bar(LABEL + NS_PER_MINUTE + 55 * NS, 11.5, 20.0)
        assert got[-1] == (LABEL + NS_PER_MINUTE, 11.5, 70.0), "then passed on as they come"

    run(body())

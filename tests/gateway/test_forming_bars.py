"""`forming-bars=SECONDS`: keepUpToDate streams get the forming minute's partial bar (same date)
every SECONDS market seconds, then the closed bar; an answer ending now ends with the forming
bar. Seen through the unmodified ib_async client; switched by Python, the CLI and the control
port (the CLI's default is on)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import write_synthetic
from momentumbot.gateway.faults import Faults, FaultSpecError
from momentumbot.gateway.market import five_second_bars
from momentumbot.gateway.server import GatewayServer, ny_ns
from tests.gateway.conftest import (
    START,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)
from tests.gateway.test_cli import Control

NS = 1_000_000_000
LABEL = ny_ns(pd.Timestamp(START), 9, 45)  # the minute the tests watch form


def ns(d: Any) -> int:
    return int(round(d.timestamp())) * NS


def ohlcv(b: Any) -> tuple[float, float, float, float, float]:
    return (b.open, b.high, b.low, b.close, float(b.volume))


def source_bar(srv: GatewayServer, sym: str, label: int) -> tuple[float, ...]:
    i = srv.market.bar_at(sym, label)
    assert i >= 0, "the synthetic store has a bar in this minute"
    return tuple(float(x) for x in srv.market.bars(sym).row(i))


def partial(bar: tuple[float, ...], seconds: int) -> tuple[float, float, float, float, float]:
    """The minute as it stood `seconds` in: its first seconds/5 five-second bars."""
    fbs = five_second_bars(LABEL, *bar)[: seconds // 5]
    return (
        fbs[0].open,
        max(f.high for f in fbs),
        min(f.low for f in fbs),
        fbs[-1].close,
        float(sum(f.volume for f in fbs)),
    )


def test_a_stream_gets_the_forming_minute_then_the_closed_bar(source: Any) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            srv.apply_fault("forming-bars=5")
            (c,) = await qualified(ib, "AAPL")
            await srv.advance_to(LABEL + 20 * NS)  # 09:45:20
            bars = await ib.reqHistoricalDataAsync(
                c, "", "1 D", "1 min", "TRADES", True, 2, keepUpToDate=True
            )
            full = source_bar(srv, "AAPL", LABEL)
            # the answer ends with the forming minute, as it stood 20 s in
            assert ns(bars[-1].date) == LABEL
            assert ns(bars[-2].date) == LABEL - 60 * NS
            assert ohlcv(bars[-1]) == pytest.approx(partial(full, 20))
            assert bars[-1].volume < full[4]
            seen: list[tuple[int, bool, tuple[float, ...]]] = []
            bars.updateEvent += lambda b, new: seen.append((ns(b[-1].date), new, ohlcv(b[-1])))
            await srv.advance_to(LABEL + 60 * NS)  # the minute closes
            await barrier(ib)
            # every revision has the minute's own date (ib_async replaces the last bar: no new
            # bar), each the 5-second path so far, and the last one is the closed bar
            expected = [partial(full, s) for s in range(25, 60, 5)] + [full[:5]]
            distinct = [x for k, x in enumerate(expected) if k == 0 or x != expected[k - 1]]
            assert [d for d, _, _ in seen] == [LABEL] * len(distinct)
            assert not any(new for _, new, _ in seen)
            assert [pytest.approx(x) for _, _, x in seen] == distinct
            assert ohlcv(bars[-1]) == pytest.approx(full[:5])
            # 5 s into the next minute its forming bar is a new bar; the closed one stays
            await srv.advance(5)
            await wait_until(lambda: ns(bars[-1].date) == LABEL + 60 * NS, what="next minute")
            assert seen[-1][1] is True
            assert ohlcv(bars[-2]) == pytest.approx(full[:5])

    run(body())


def test_forming_bars_0_sends_closed_bars_only(source: Any) -> None:
    async def body() -> None:
        async with gateway(source, faults=Faults(forming_bars=5.0)) as srv, connected(srv) as ib:
            srv.apply_fault("forming-bars=0")
            (c,) = await qualified(ib, "AAPL")
            await srv.advance_to(LABEL + 20 * NS)
            bars = await ib.reqHistoricalDataAsync(
                c, "", "1 D", "1 min", "TRADES", True, 2, keepUpToDate=True
            )
            assert ns(bars[-1].date) == LABEL - 60 * NS  # the last closed minute
            seen: list[tuple[int, bool]] = []
            bars.updateEvent += lambda b, new: seen.append((ns(b[-1].date), new))
            await srv.advance_to(LABEL + 59 * NS)
            await barrier(ib)
            assert seen == []
            await srv.advance_to(LABEL + 60 * NS)
            await wait_until(lambda: bool(seen), what="the closed bar")
            assert seen == [(LABEL, True)]
            assert ohlcv(bars[-1]) == pytest.approx(source_bar(srv, "AAPL", LABEL)[:5])

    run(body())


def test_the_fault_spec() -> None:
    f = Faults()
    assert f.forming_bars == 0
    f.apply("forming-bars=5")
    assert f.forming_bars == 5
    f.apply("forming-bars=0")
    assert f.forming_bars == 0
    for bad in ("forming-bars=60", "forming-bars=-1", "forming-bars=x"):
        with pytest.raises(FaultSpecError):
            f.apply(bad)


def test_the_gateway_command_forms_bars_by_default_and_the_control_port_switches_it(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    write_synthetic(BarStore(store), ["AAPL"], start="2024-01-02", n_sessions=2, seed=7)

    async def body() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "momentumbot", "gateway", "--store", str(store), "--port", "0",
            "--control-port", "0", "--step", "--log-level", "WARNING",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
            port, control_port = int(line[1].rsplit(":", 1)[1]), int(line[3])
            control = Control(*await asyncio.open_connection("127.0.0.1", control_port))
            from ib_async import IB

            ib = IB()
            await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=10)
            try:
                (c,) = await qualified(ib, "AAPL")
                await control("advance-to 09:45")
                await control("advance 30")
                bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2)
                assert ns(bars[-1].date) == LABEL  # on by default: the forming minute
                await control("fault forming-bars=0")
                bars = await ib.reqHistoricalDataAsync(c, "", "1 D", "1 min", "TRADES", True, 2)
                assert ns(bars[-1].date) == LABEL - 60 * NS  # off: closed minutes only
            finally:
                ib.disconnect()
            await control("shutdown")
            control.writer.close()
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    run(body())

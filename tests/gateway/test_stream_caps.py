"""IB's caps and a stream that dies alone, seen through the unmodified ib_async client:
`max-hist-requests` (322 for the request past the cap; every keepUpToDate stream counts until
cancelled; on by default at 50), `max-market-data-lines` (101; on by default at 100) and
`cancel-stream` (162 "API historical data query cancelled", then silence; a new request
works)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from ib_async import IB, Contract, RequestError

from momentumbot.gateway.faults import Faults, FaultSpecError
from momentumbot.gateway.server import ny_ns
from tests.gateway.conftest import (
    START,
    IbLogGuard,
    barrier,
    connected,
    gateway,
    qualified,
    run,
    wait_until,
)

NS = 1_000_000_000


async def stream(ib: IB, c: Contract) -> Any:
    return await ib.reqHistoricalDataAsync(
        c, "", "1 D", "1 min", "TRADES", True, 2, keepUpToDate=True, timeout=5
    )


def test_specs_defaults_and_nonsense() -> None:
    f = Faults()
    assert (f.max_hist_requests, f.max_market_data_lines) == (50, 100), "on by default, as IB"
    for spec in ("max-hist-requests=3", "max-market-data-lines=7", "cancel-stream=aapl"):
        f.apply(spec)
    f.apply("cancel-stream=SPY@10:30")
    assert (f.max_hist_requests, f.max_market_data_lines) == (3, 7)
    assert f.cancel_streams == [("AAPL", -1), ("SPY", 630)]
    f.apply("max-hist-requests=0")
    assert f.max_hist_requests == 0, "0: no cap"
    for bad in ("max-hist-requests=-1", "max-market-data-lines=x", "cancel-stream=",
                "cancel-stream=A,B", "cancel-stream=AAPL@25:00"):  # fmt: skip
        with pytest.raises(FaultSpecError):
            f.apply(bad)
    f.clear()
    assert (f.max_hist_requests, f.max_market_data_lines, f.cancel_streams) == (50, 100, [])


def test_the_request_past_the_cap_gets_322_and_a_cancel_frees_a_slot(
    source: Any, ib_log: IbLogGuard
) -> None:
    ib_log.expect(322)

    async def body() -> None:
        async with gateway(source, faults=Faults(max_hist_requests=2)) as srv:
            async with connected(srv) as ib:
                ib.RaiseRequestErrors = True
                aapl, msft, spy = await qualified(ib, "AAPL", "MSFT", "SPY")
                await srv.advance_to_time("09:40")
                a = await stream(ib, aapl)
                await stream(ib, msft)
                with pytest.raises(RequestError) as exc:
                    await stream(ib, spy)
                assert exc.value.code == 322
                assert "Only 2 simultaneous API historical data requests" in exc.value.message
                with pytest.raises(RequestError) as exc:  # a one-shot counts while it is open
                    await ib.reqHistoricalDataAsync(spy, "", "1 D", "1 min", "TRADES", True, 2)
                assert exc.value.code == 322
                ib.cancelHistoricalData(a)
                await barrier(ib)
                assert len(await stream(ib, spy)) > 0, "a cancelled stream frees its slot"
                assert srv.status()["peak_hist_requests"] == 2
            async with connected(srv, client_id=2) as ib2:  # a new connection starts afresh
                (aapl2,) = await qualified(ib2, "AAPL")
                assert len(await stream(ib2, aapl2)) > 0

    run(body())


def test_market_data_lines_past_the_cap_get_101(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(101)

    async def body() -> None:
        faults = Faults(max_market_data_lines=2)
        async with gateway(source, faults=faults) as srv, connected(srv) as ib:
            errors: list[tuple[int, int, str]] = []
            ib.errorEvent += lambda req_id, code, msg, c: errors.append((req_id, code, msg))
            aapl, msft, spy = await qualified(ib, "AAPL", "MSFT", "SPY")
            ib.reqMktData(aapl)
            rt = ib.reqRealTimeBars(msft, 5, "TRADES", True)
            spy_rt = ib.reqRealTimeBars(spy, 5, "TRADES", True)
            await barrier(ib)
            assert [(r, c) for r, c, _ in errors] == [(spy_rt.reqId, 101)]
            assert errors[0][2] == "Max number of tickers has been reached"
            await srv.advance_to_time("09:32")
            await wait_until(lambda: len(rt) >= 12, what="MSFT's 5-second bars")
            assert len(spy_rt) == 0
            ib.cancelRealTimeBars(rt)
            spy_ticker = ib.reqMktData(spy)
            await srv.advance_to_time("09:33")
            await wait_until(lambda: spy_ticker.last > 0, what="SPY ticks on the freed line")
            assert srv.status()["peak_market_data_lines"] == 2

    run(body())


def test_cancel_stream_now_sends_162_and_silence_then_a_new_request_works(
    source: Any, ib_log: IbLogGuard
) -> None:
    ib_log.expect(162)

    async def body() -> None:
        async with gateway(source) as srv, connected(srv) as ib:
            errors: list[tuple[int, int, str]] = []
            ib.errorEvent += lambda req_id, code, msg, c: errors.append((req_id, code, msg))
            aapl, msft = await qualified(ib, "AAPL", "MSFT")
            await srv.advance_to_time("09:40")
            a, m = await stream(ib, aapl), await stream(ib, msft)
            srv.apply_fault("cancel-stream=AAPL")
            await barrier(ib)
            assert [(r, c) for r, c, _ in errors] == [(a.reqId, 162)]
            assert errors[0][2].endswith(f"API historical data query cancelled: {a.reqId}")
            n_a, n_m = len(a), len(m)
            await srv.advance_to_time("09:45")
            await barrier(ib)
            assert len(a) == n_a, "the cancelled stream is silent"
            assert len(m) == n_m + 5, "the other symbol's stream goes on"
            again = await stream(ib, aapl)
            await srv.advance_to_time("09:47")
            await wait_until(lambda: bool(len(again)) and again[-1].date.minute == 46, what="bars")
            assert any(e["what"] == "cancel-stream" for e in srv.record.events)

    run(body())


def test_cancel_stream_at_a_time(source: Any, ib_log: IbLogGuard) -> None:
    ib_log.expect(162)

    async def body() -> None:
        faults = Faults()
        faults.apply("cancel-stream=MSFT@09:50")
        async with gateway(source, faults=faults) as srv, connected(srv) as ib:
            codes: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, msg, c: codes.append((req_id, code))
            (msft,) = await qualified(ib, "MSFT")
            await srv.advance_to_time("09:40")
            m = await stream(ib, msft)
            await srv.advance_to_time("09:49")
            await barrier(ib)
            assert codes == [] and m[-1].date.minute == 48
            await srv.advance_to_time("09:55")
            await barrier(ib)
            assert codes == [(m.reqId, 162)]
            last = pd.Timestamp(m[-1].date).tz_convert("America/New_York")
            assert (last.hour, last.minute) < (9, 50), "no bar from 09:50 on"
            assert srv.now_ns() == ny_ns(pd.Timestamp(START), 9, 55)

    run(body())


def test_caps_switched_off_with_0(source: Any) -> None:
    async def body() -> None:
        faults = Faults(max_hist_requests=0, max_market_data_lines=0)
        async with gateway(source, faults=faults) as srv, connected(srv) as ib:
            (aapl,) = await qualified(ib, "AAPL")
            await srv.advance_to_time("09:40")
            streams = [await stream(ib, aapl) for _ in range(3)]
            tickers = [ib.reqMktData(aapl) for _ in range(3)]
            await srv.advance_to_time("09:41")
            await wait_until(lambda: all(t.last > 0 for t in tickers), what="ticks")
            assert all(len(s) for s in streams) and not any(math.isnan(t.last) for t in tickers)

    run(body())

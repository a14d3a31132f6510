"""IB history fetch through the unmodified ib_async client against the simulated gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.data.ib_history import (
    IbHistoryFetcher,
    IbHistorySettings,
    describe_stop,
    parse_day,
)
from momentumbot.data.manifest import FetchManifest
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import generate_bars, synthetic_sessions
from momentumbot.domain.errors import ConfigError
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.server import GatewayConfig, GatewayServer
from momentumbot.testing import MemoryBarSource

pytestmark = [
    # ib_async's event objects and sockets closed on purpose by the gateway, as in tests/gateway
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore:unclosed transport:ResourceWarning"),
]

SYMBOLS = ("AAPL", "MSFT", "SPY")
FIRST = dt.date(2024, 1, 2)
LAST = dt.date(2024, 1, 9)  # six sessions
GATEWAY_START = "2024-01-10"  # its clock starts at 09:00 New York that day: all six are closed


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    bars = generate_bars(list(SYMBOLS), synthetic_sessions(str(FIRST), 6), seed=11)
    # SPY did not trade on 2024-01-04: the gateway answers "HMDS query returned no data"
    spy = bars["SPY"]
    day = spy["ts"].dt.tz_convert("America/New_York").dt.date
    bars["SPY"] = spy.loc[day != dt.date(2024, 1, 4)].reset_index(drop=True)
    return bars


@asynccontextmanager
async def gateway(frames: dict[str, pd.DataFrame], faults: Faults) -> AsyncIterator[GatewayServer]:
    srv = GatewayServer(
        MemoryBarSource(frames),
        GatewayConfig(start=GATEWAY_START, step_mode=True, port=0, faults=faults),
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def settings(port: int, **kw: Any) -> IbHistorySettings:
    base: dict[str, Any] = {
        "port": port,
        "client_id": 7,
        "requests_per_minute": 60_000.0,
        "pacing_backoff_seconds": 0.1,
        "max_retries": 20,
        "request_timeout_seconds": 10.0,
        "connect_timeout_seconds": 5.0,
    }
    base.update(kw)
    return IbHistorySettings(**base)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def assert_store_holds_exactly(store: BarStore, frames: dict[str, pd.DataFrame]) -> None:
    assert store.symbols() == sorted(frames)
    for sym, expected in frames.items():
        got = store.read(sym)
        assert got["ts"].is_unique
        want = expected[["ts", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_fetch_survives_pacing_violations_with_every_bar_once(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    store = BarStore(tmp_path)

    async def body() -> Any:
        # more than 4 history requests in 0.3 real seconds get error 162
        async with gateway(frames, Faults(pacing=(4, 0.3))) as srv:
            return await IbHistoryFetcher(settings(srv.port), store).fetch(SYMBOLS, FIRST, LAST)

    report = run(body())
    assert report.stop_kind is None and not report.failed
    assert report.pacing_violations > 0  # the fault fired, and the fetch still completed
    assert report.requests == 18 + report.pacing_violations
    assert report.sessions_fetched == 18
    assert_store_holds_exactly(store, frames)
    manifest = FetchManifest(store.root, "ib")
    assert manifest.get("SPY", "2024-01-04") == {
        "bars": 0, "complete": True, "fetched_at": "2024-01-10T14:00:00+00:00",
    }  # fmt: skip
    assert manifest.get("AAPL", "2024-01-02")["bars"] == 390

    async def again() -> Any:
        async with gateway(frames, Faults()) as srv:
            return await IbHistoryFetcher(settings(srv.port), store).fetch(SYMBOLS, FIRST, LAST)

    rerun = run(again())
    assert rerun.requests == 0 and len(rerun.skipped) == 18
    assert_store_holds_exactly(store, frames)


def test_stop_then_resume_fetches_only_the_rest(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    store = BarStore(tmp_path)

    async def strict() -> Any:
        # one request per 30 s: the second one keeps failing until the fetch gives up
        async with gateway(frames, Faults(pacing=(1, 30.0))) as srv:
            s = settings(srv.port, max_retries=2, pacing_backoff_seconds=0.01)
            return await IbHistoryFetcher(s, store).fetch(SYMBOLS, FIRST, LAST)

    first = run(strict())
    assert first.stop_kind == "retries" and first.sessions_fetched == 1
    assert first.pacing_violations == 3 and len(first.not_fetched) == 17
    message = describe_stop(first)
    assert "Fetched 1 symbol-sessions" in message and "run the same command again" in message
    kept = store.read("AAPL")

    async def relaxed() -> Any:
        async with gateway(frames, Faults()) as srv:
            return await IbHistoryFetcher(settings(srv.port, chunk_sessions=3), store).fetch(
                SYMBOLS, FIRST, LAST
            )

    second = run(relaxed())
    assert second.stop_kind is None and second.skipped == [("AAPL", "2024-01-02")]
    # AAPL: 01-03..01-05 and 01-08..01-09 (two chunks), MSFT and SPY: two chunks of three
    assert second.requests == 6 and second.sessions_fetched == 17
    assert all(c.unchanged == 0 for c in second.fetched)  # nothing fetched twice
    pd.testing.assert_frame_equal(store.read("AAPL").iloc[: len(kept)], kept)
    assert_store_holds_exactly(store, frames)


def test_unknown_symbol_fails_alone_and_unreachable_gateway_stops(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    store = BarStore(tmp_path)

    async def body() -> Any:
        async with gateway(frames, Faults()) as srv:
            return await IbHistoryFetcher(settings(srv.port), store).fetch(
                ["NOPE", "MSFT"], FIRST, dt.date(2024, 1, 3)
            )

    report = run(body())
    assert list(report.failed) == ["NOPE"] and "error 200" in report.failed["NOPE"]
    assert report.sessions_fetched == 2 and store.symbols() == ["MSFT"]

    async def nobody() -> Any:
        s = settings(1, connect_timeout_seconds=1.0)  # nothing listens on port 1
        return await IbHistoryFetcher(s, store).fetch(["MSFT"], FIRST, LAST)

    down = run(nobody())
    assert down.stop_kind == "connection" and "127.0.0.1:1" in down.stop_reason
    assert len(down.not_fetched) == 6


def test_sessions_after_the_server_clock_are_not_asked_for(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    store = BarStore(tmp_path)

    async def body() -> Any:
        async with gateway(frames, Faults()) as srv:
            return await IbHistoryFetcher(settings(srv.port), store).fetch(
                ["MSFT"], dt.date(2024, 1, 9), dt.date(2024, 1, 12)
            )

    report = run(body())
    assert report.sessions_fetched == 1
    assert report.not_closed == [("MSFT", d) for d in ("2024-01-10", "2024-01-11", "2024-01-12")]


def test_days_and_settings() -> None:
    assert parse_day("2024-02", "--to", last=True) == dt.date(2024, 2, 29)
    assert parse_day("2024-02", "--from", last=False) == dt.date(2024, 2, 1)
    assert parse_day("2024-02-05", "--from", last=False) == dt.date(2024, 2, 5)
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_day("05/02/2024", "--from", last=False)
    with pytest.raises(ConfigError, match="between 1 and 5"):
        from momentumbot.config.schema import DataConfig

        IbHistorySettings.from_config(DataConfig(), chunk_sessions=9)


def test_cli_fetch_from_ib(
    frames: dict[str, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from momentumbot.cli import main

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    srv = GatewayServer(
        MemoryBarSource(frames), GatewayConfig(start=GATEWAY_START, step_mode=True, port=0)
    )
    asyncio.run_coroutine_threadsafe(srv.start(), loop).result(10)
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            f"[data]\nib_history_port = {srv.port}\nib_history_client_id = 5\n"
            "ib_history_requests_per_minute = 6000.0\n"
        )
        args = ["data", "fetch", "--source", "ib", "--symbols", "MSFT,SPY", "--from", "2024-01"]
        args += ["--to", "2024-01-05", "--store", str(tmp_path / "s"), "--config", str(cfg)]
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "MSFT" in out and "8 symbol-sessions fetched in 8 requests" in out
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 0 and "0 symbol-sessions fetched in 0 requests" in out
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    msft = frames["MSFT"]
    assert BarStore(tmp_path / "s").info("MSFT").rows == int(
        (msft["ts"] < pd.Timestamp("2024-01-06", tz="UTC")).sum()
    )

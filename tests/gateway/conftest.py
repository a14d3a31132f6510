"""Fixtures for the gateway tests: synthetic bars, a gateway in step mode, ib_async clients, and a
guard that fails a test when ib_async logs an error it was not told to expect."""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from ib_async import IB, Contract, Stock

from momentumbot.data.synthetic import generate_bars, synthetic_sessions
from momentumbot.gateway.clock import Monotonic
from momentumbot.gateway.server import GatewayConfig, GatewayServer
from momentumbot.testing import MemoryBarSource

SYMBOLS = ("AAPL", "MSFT", "SPY")
FIRST_SESSION = "2024-01-02"
START = "2024-01-03"  # the gateway's clock starts at 09:00 New York on this session


@pytest.fixture(scope="session")
def bar_frames() -> dict[str, Any]:
    return generate_bars(list(SYMBOLS), synthetic_sessions(FIRST_SESSION, 4), seed=7)


@pytest.fixture
def source(bar_frames: dict[str, Any]) -> MemoryBarSource:
    return MemoryBarSource(bar_frames)


ERROR_CODE = re.compile(r"^Error (\d+), reqId")


class IbLogGuard(logging.Handler):
    """Collects ERROR records from ib_async. `expect(code)`: the test needs IB to send that error
    code ("Error <code>, reqId ..." is logged) and fails if it never comes; `tolerate(code)`: the
    code may come (a race the test does not control); `allow(pattern)`: other lines that may come."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.allowed: list[re.Pattern[str]] = []
        self.expected: set[int] = set()
        self.seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        m = ERROR_CODE.match(record.getMessage())
        if m:
            self.seen.add(int(m.group(1)))

    def expect(self, *codes: int) -> None:
        self.expected.update(codes)
        self.tolerate(*codes)

    def tolerate(self, *codes: int) -> None:
        for code in codes:
            self.allowed.append(re.compile(rf"^Error {code}, reqId"))

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        out = []
        for r in self.records:
            msg = r.getMessage()
            if r.name in ("ib_async.wrapper", "ib_async.client", "ib_async.ib") and any(
                a.search(msg) for a in self.allowed
            ):
                continue
            out.append(f"{r.name}: {msg}")
        return out

    def missing(self) -> list[int]:
        """Expected codes that never came."""
        return sorted(self.expected - self.seen)


@pytest.fixture(autouse=True)
def ib_log() -> Iterator[IbLogGuard]:
    """Fails any gateway test in which ib_async logs an error it was not told to expect
    (`ib_log.expect(code)`, `ib_log.tolerate(code)`, `ib_log.allow(pattern)`): decoder layout
    errors above all, which ib_async only logs (logger ib_async.Decoder) before dropping the
    message. A test that expects a code it never sees fails too."""
    guard = IbLogGuard()
    loggers = [logging.getLogger(n) for n in ("ib_async", "ib_async.Decoder", "ib_async.wrapper")]
    root = loggers[0]
    old = root.level
    root.setLevel(logging.INFO)
    root.addHandler(guard)
    try:
        yield guard
    finally:
        root.removeHandler(guard)
        root.setLevel(old)
    bad = guard.unexpected()
    if bad:
        pytest.fail("ib_async logged errors:\n" + "\n".join(bad))
    missing = guard.missing()
    if missing:
        pytest.fail(
            f"expected IB error code(s) {missing} never came (ib_log.expect); "
            "ib_log.tolerate is for a code that may not come"
        )


def run(coro: Any) -> Any:
    """Run one test body on a fresh event loop."""
    with warnings.catch_warnings():
        return asyncio.run(coro)


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `pred` until it holds (the client and gateway share the loop, so this yields to both)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def gateway(
    source: Any, monotonic: Monotonic | None = None, **cfg: Any
) -> AsyncIterator[GatewayServer]:
    """A started gateway (step mode, any free port); `monotonic` is its real clock (a test that
    steps real time passes a `ManualClock`)."""
    cfg.setdefault("start", START)
    cfg.setdefault("step_mode", True)
    cfg.setdefault("port", 0)
    srv = GatewayServer(source, GatewayConfig(**cfg), monotonic=monotonic)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@asynccontextmanager
async def connected(srv: GatewayServer, client_id: int = 1, **kw: Any) -> AsyncIterator[IB]:
    ib = IB()
    await ib.connectAsync("127.0.0.1", srv.port, clientId=client_id, timeout=5, **kw)
    try:
        yield ib
    finally:
        ib.disconnect()
        await asyncio.sleep(0)


async def barrier(ib: IB) -> None:
    """A round trip: everything the client sent before has reached the gateway."""
    await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)


async def qualified(ib: IB, *symbols: str) -> list[Contract]:
    """The stocks' contracts as the gateway qualifies them (each must be known)."""
    out = await ib.qualifyContractsAsync(*(Stock(s, "SMART", "USD") for s in symbols))
    for sym, c in zip(symbols, out, strict=True):
        assert isinstance(c, Contract), f"{sym} did not qualify: {c!r}"
    return [c for c in out if isinstance(c, Contract)]

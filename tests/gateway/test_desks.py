"""The desks without TCP: the injected real clock, the message registry, and fault windows
stepped on a manual clock through in-memory connections (the TCP tests beside these use ib_async)."""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

import pytest

from momentumbot.gateway import protocol as p
from momentumbot.gateway.clock import ManualClock, SystemClock, VirtualClock
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.desks.sessions import register
from momentumbot.gateway.server import GatewayConfig, GatewayServer
from tests.gateway.conftest import START, IbLogGuard

NS = 1_000_000_000
# every request the gateway served before it was split into desks
SERVED = {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 20, 25, 49, 50, 51, 58, 59, 61, 62, 63, 64}
SERVED |= {76, 77, 87, 90, 99}


def test_a_manual_clock_runs_what_falls_due_in_time_order() -> None:
    real = ManualClock(start=0.0)
    seen: list[tuple[str, float]] = []
    real.call_later(0.3, lambda: seen.append(("b", real.now())))
    real.call_later(0.1, lambda: seen.append(("a", real.now())))
    dropped = real.call_later(0.2, lambda: seen.append(("x", real.now())))
    real.call_later(5.0, lambda: seen.append(("later", real.now())))
    dropped.cancel()
    real.advance(0.1)
    assert seen == [("a", 0.1)]
    real.advance(0.5)
    assert seen == [("a", 0.1), ("b", 0.3)] and real.now() == 0.6 and real.pending == 1
    with pytest.raises(ValueError):
        real.advance(-1)


def test_the_market_clock_runs_on_the_real_clock_it_is_given() -> None:
    real = ManualClock()
    clock = VirtualClock(0, speed=60.0, paused=False, real=real)
    real.advance(1.0)
    assert clock.now_ns() == 60 * NS
    clock.pause()
    real.advance(10.0)
    assert clock.now_ns() == 60 * NS
    clock.set_speed(3600.0)
    clock.resume()
    real.advance(0.5)
    assert clock.now_ns() == (60 + 1800) * NS
    assert clock.real_seconds(3600.0) == 1.0
    clock.start_at(0)  # time before the start does not count
    assert clock.now_ns() == 0 and clock.anchor()["monotonic"] == real.now()


def test_the_system_clock_is_time_monotonic_and_the_loop_s_timers() -> None:
    async def body() -> float:
        fired = asyncio.Event()
        real = SystemClock()
        t0 = real.now()
        real.call_later(0.01, fired.set)
        await asyncio.wait_for(fired.wait(), 5)
        return real.now() - t0

    assert asyncio.run(body()) >= 0.01


def test_each_request_is_served_by_exactly_one_desk(source: Any) -> None:
    srv = GatewayServer(source, GatewayConfig(start=START, step_mode=True, port=0))
    assert set(srv.handlers) == SERVED
    with pytest.raises(ValueError, match="already has a handler"):
        register(srv.handlers, {49: lambda s, r: None})


class MemoryTransport(asyncio.Transport):
    """A connection's other end, in memory: what the gateway wrote, and whether it hung up."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.gone = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("memory", 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def abort(self) -> None:
        self.gone = True

    def close(self) -> None:
        self.gone = True

    def error_codes(self) -> list[int]:
        codes, buf = [], bytes(self.data)
        while buf:
            (n,) = struct.unpack(">I", buf[:4])
            fields = buf[4 : 4 + n].decode().split("\0")
            buf = buf[4 + n :]
            if fields[0] == "4":
                codes.append(int(fields[3]))
        return codes


def connect(srv: GatewayServer, client_id: int) -> tuple[ClientSession, MemoryTransport]:
    s, t = ClientSession(srv.desks.sessions), MemoryTransport()
    s.connection_made(t)
    s.data_received(p.handshake_bytes() + p.frame([71, 2, client_id, ""]))
    return s, t


def test_a_held_client_id_is_free_again_on_test_time(source: Any) -> None:
    async def body() -> None:
        real = ManualClock()
        srv = GatewayServer(
            source, GatewayConfig(start=START, step_mode=True, port=0), monotonic=real
        )
        srv.apply_fault("hold-client-id=2.5")
        first, _ = connect(srv, 5)
        assert first.ready
        first.connection_lost(None)
        real.advance(2.4)
        refused, wire = connect(srv, 5)
        assert not refused.ready and wire.gone and wire.error_codes() == [326]
        real.advance(0.2)
        again, wire = connect(srv, 5)
        assert again.ready and not wire.gone and 326 not in wire.error_codes()

    asyncio.run(body())


def test_the_pacing_window_runs_on_test_time(source: Any) -> None:
    async def body() -> None:
        real = ManualClock()
        srv = GatewayServer(
            source, GatewayConfig(start=START, step_mode=True, port=0), monotonic=real
        )
        srv.apply_fault("pacing=2/10")
        s, wire = connect(srv, 1)
        contract: list[str | int | float | None] = [
            0,
            "AAPL",
            "STK",
            "",
            0.0,
            "",
            "",
            "SMART",
            "",
            "USD",
            "",
            "",
        ]

        def history(req_id: int) -> None:
            s.data_received(
                p.frame([20, req_id, *contract, 0, "", "1 min", "1 D", 1, "TRADES", 1, 0, ""])
            )

        history(1)
        history(2)
        real.advance(9.9)
        history(3)
        assert wire.error_codes().count(162) == 1, "the third request within 10 s"
        real.advance(0.2)
        history(4)
        assert wire.error_codes().count(162) == 1, "the window has passed"

    asyncio.run(body())


def test_the_log_guard_requires_the_codes_a_test_expects() -> None:
    guard = IbLogGuard()
    guard.expect(202)
    guard.tolerate(10148)
    assert guard.missing() == [202]

    def error(msg: str) -> None:
        guard.emit(logging.LogRecord("ib_async.wrapper", logging.ERROR, "", 0, msg, None, None))

    error("Error 10148, reqId 7: OrderId 7 that needs to be cancelled cannot be cancelled")
    assert guard.missing() == [202] and guard.unexpected() == []
    error("Error 202, reqId 7: Order Canceled - reason:")
    assert guard.missing() == [] and guard.unexpected() == []
    error("Error 201, reqId 8: Order rejected")
    assert guard.unexpected() == ["ib_async.wrapper: Error 201, reqId 8: Order rejected"]

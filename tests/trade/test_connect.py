"""Connecting through the real ib_async client: a refused port fails at once, a socket closed
during the handshake fails at once, and only a connection that opens and says nothing waits
for the connect timeout."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest

from momentumbot.execution.ib_broker import (
    BrokerSettings,
    BrokerUnavailable,
    ConnectionRefused,
    IbBroker,
)
from tests.gateway.conftest import IbLogGuard

DROPS = "Peer closed connection|API connection failed|Make sure API port|Connection reset"


class _Listener:
    def on_execution(self, *a: Any) -> None: ...
    def on_commission(self, *a: Any) -> None: ...
    def on_order_status(self, *a: Any) -> None: ...
    def on_order_error(self, *a: Any) -> None: ...
    def on_connectivity(self, *a: Any) -> None: ...
    def on_disconnected(self) -> None: ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _attempt(port: int, timeout: float) -> tuple[BaseException, float]:
    broker = IbBroker(BrokerSettings(port=port, connect_timeout=timeout), _Listener())  # type: ignore[arg-type]
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        await broker.connect(allow_fallback=False)
    return info.value, time.monotonic() - t0


def test_a_refused_connection_fails_at_once(ib_log: IbLogGuard) -> None:
    ib_log.allow(DROPS)
    exc, took = asyncio.run(_attempt(_free_port(), 10.0))
    assert isinstance(exc, ConnectionRefused)
    assert took < 1.0
    assert "connection refused" in str(exc)


@pytest.mark.parametrize("behaviour", ["close", "silent"])
def test_a_closed_handshake_fails_at_once_and_a_silent_one_waits(
    behaviour: str, ib_log: IbLogGuard
) -> None:
    ib_log.allow(DROPS)

    async def body() -> tuple[BaseException, float]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if behaviour == "silent":  # read the handshake, answer nothing, until EOF
                    while await reader.read(1 << 16):
                        pass
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await _attempt(port, 1.5)
        finally:
            server.close()
            await server.wait_closed()

    exc, took = asyncio.run(body())
    assert not isinstance(exc, ConnectionRefused)
    if behaviour == "close":
        assert took < 1.0, took
        assert "closed the connection during the API handshake" in str(exc)
    else:
        assert 1.4 < took < 4.0, took
        assert "did not complete the TWS API handshake" in str(exc)

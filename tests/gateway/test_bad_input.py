"""Bad input from one client (garbage, a wrong handshake, truncated or unknown messages) gets
that client an error or a closed socket; the gateway keeps serving everyone else."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from momentumbot.gateway.protocol import FrameReader, frame, handshake_bytes
from momentumbot.gateway.server import GatewayServer
from tests.gateway.conftest import IbLogGuard, connected, gateway, run


class RawClient:
    """A bare TCP client speaking the framing by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = FrameReader()
        self.frames.handshake_done = True  # server -> client has no API prefix

    @classmethod
    async def open(cls, port: int) -> RawClient:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def logon(self, client_id: int) -> list[list[str]]:
        await self.send(handshake_bytes())
        hello = await self.messages(1)
        assert hello[0][0] == "178"
        await self.send(frame([71, 2, client_id, ""]))
        return await self.messages(5)  # nextValidId, managedAccounts, three farm notices

    async def messages(self, n: int, timeout: float = 2.0) -> list[list[str]]:
        out: list[list[str]] = []
        while len(out) < n:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionResetError("closed")
            out += self.frames.feed(data)
        return out

    async def closed(self, timeout: float = 2.0) -> bool:
        """Did the gateway close this socket? (The client's end is closed either way.)"""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.close()

    def close(self) -> None:
        self.writer.close()


async def still_serving(srv: GatewayServer) -> None:
    async with connected(srv, client_id=99) as ib:
        assert await ib.reqCurrentTimeAsync()


def test_garbage_bytes_close_only_that_client(source: Any, ib_log: IbLogGuard) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv, client_id=1) as ib:
            bad = await RawClient.open(srv.port)
            await bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await bad.closed()
            assert ib.isConnected() and await ib.reqCurrentTimeAsync()
            await still_serving(srv)

    run(body())


def test_wrong_handshake_versions_and_prefix(source: Any) -> None:
    async def body() -> None:
        async with gateway(source) as srv:
            for data in (
                b"API\0" + struct.pack(">I", 6) + b"v1..99",  # versions that exclude 178
                b"API\0" + struct.pack(">I", 5) + b"hello",  # not a version offer
                b"APX\0" + struct.pack(">I", 10) + b"v157..178",
                b"API\0" + struct.pack(">I", 0x7FFFFFFF),  # absurd length
            ):
                bad = await RawClient.open(srv.port)
                await bad.send(data)
                assert await bad.closed(), data
            await still_serving(srv)

    run(body())


def test_messages_before_start_api_close_the_socket(source: Any) -> None:
    async def body() -> None:
        async with gateway(source) as srv:
            bad = await RawClient.open(srv.port)
            await bad.send(handshake_bytes())
            await bad.messages(1)
            await bad.send(frame([49, 1]))  # reqCurrentTime before startApi
            assert await bad.closed()
            await still_serving(srv)

    run(body())


def test_unknown_and_truncated_requests_get_errors_and_the_session_goes_on(source: Any) -> None:
    async def body() -> None:
        async with gateway(source) as srv:
            c = await RawClient.open(srv.port)
            await c.logon(client_id=5)
            await c.send(frame([4242, 1, 2, 3]))  # unknown message id
            (err,) = await c.messages(1)
            assert err[0] == "4" and err[3] == "320"
            await c.send(frame(["x"]))  # a message id that is not a number
            (err,) = await c.messages(1)
            assert err[3] == "320"
            await c.send(frame([20, 7, 0, "AAPL"]))  # reqHistoricalData cut short
            (err,) = await c.messages(1)
            assert err[3] == "320" and "ends after" in err[4]
            await c.send(frame([3, "notanumber"]))  # placeOrder with a bad order id
            (err,) = await c.messages(1)
            assert err[3] == "320"
            await c.send(frame([8, 1, 1]))  # reqIds
            (next_id,) = await c.messages(1)
            assert next_id[:2] == ["9", "1"] and int(next_id[2]) >= 1
            await c.send(frame([49, 1]))  # the session still answers
            (now,) = await c.messages(1)
            assert now[0] == "49" and int(now[2]) == srv.now_ns() // 1_000_000_000
            # a frame cut off mid-way, then the peer goes away: only this socket is affected
            await c.send(struct.pack(">I", 100) + b"20\0")
            c.close()
            await still_serving(srv)
            assert srv.stats["requests"] >= 6

    run(body())


def test_many_bad_clients_at_once_do_not_disturb_a_good_one(
    source: Any, ib_log: IbLogGuard
) -> None:
    async def body() -> None:
        async with gateway(source) as srv, connected(srv, client_id=1) as ib:
            bads = [await RawClient.open(srv.port) for _ in range(20)]
            await asyncio.gather(*(b.send(bytes(range(256)) * 4) for b in bads))
            assert all(await asyncio.gather(*(b.closed() for b in bads)))
            await srv.advance(600)
            assert await ib.reqCurrentTimeAsync()
            assert len(srv.sessions) == 1

    run(body())


def test_an_unreadable_bar_file_is_logged_and_served_as_no_data(tmp_path: Any, caplog: Any) -> None:
    """A corrupt Parquet file is an ERROR naming the symbol and IB's "no data"; a bug in the
    bar source is raised, not hidden as "no data"."""
    import pytest

    from momentumbot.data.calendar import TradingCalendar
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import write_synthetic
    from momentumbot.gateway.market import MarketData

    store = BarStore(tmp_path / "store")
    write_synthetic(store, ["AAA", "BBB"], start="2024-01-02", n_sessions=2, seed=1)
    store.path("BBB").write_bytes(b"PAR1 this is not parquet PAR1")
    md = MarketData(store, TradingCalendar(), 0)
    assert len(md.bars("AAA")) > 0
    assert len(md.bars("BBB")) == 0
    assert any(r.levelname == "ERROR" and "BBB: cannot read its bars" in r.getMessage()
               for r in caplog.records)  # fmt: skip

    class Broken:
        def symbols(self) -> list[str]:
            return ["AAA"]

        def read_arrays(self, symbol: str, start_ns: int, end_ns: int) -> Any:
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        MarketData(Broken(), TradingCalendar(), 0).bars("AAA")

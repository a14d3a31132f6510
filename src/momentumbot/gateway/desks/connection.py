"""One API connection (`ClientSession`): framing, the handshake, startApi, and output, with what
the client subscribed to (`HistSub`, `RtSub`, `MktSub`: served by the market data desk); what it
asks of the gateway is a `SessionHost` (the sessions desk)."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from momentumbot.gateway import protocol as p
from momentumbot.gateway.market import TickState
from momentumbot.gateway.protocol import ProtocolError, Reader, RequestError, StockInfo

log = logging.getLogger("momentumbot.gateway")

WRITE_HIGH_WATER = 1 << 20


class SessionHost(Protocol):
    """What a connection asks of the gateway."""

    def connection_time(self) -> str: ...

    def connected(self, s: ClientSession) -> None: ...

    def disconnected(self, s: ClientSession) -> None: ...

    def start_api(self, s: ClientSession, client_id: int) -> None: ...

    def request(self, s: ClientSession, fields: list[str]) -> None: ...


class ClientSession(asyncio.Protocol):
    """One API client: framing, the handshake, and requests handed to the desks."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.reader = p.FrameReader()
        self.server_version = 0
        self.client_id = -1
        self.ready = False
        self.closed = False
        self.peer = "?"
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.held: list[bytes] = []  # order messages held back during an outage
        self.subs: dict[int, Sub] = {}
        self.positions_subscribed = False
        self.account_updates: str | None = None
        self.account_multi: dict[int, str] = {}
        self.account_summary: dict[int, tuple[str, ...]] = {}
        self.messages_sent = 0
        self.last_request = float("-inf")  # real time of the latest request (lockstep)
        # real times of the requests of the last second or so (lockstep: a throttled client)
        self.recent_requests: collections.deque[float] = collections.deque(maxlen=64)
        self.last_not_time = float("-inf")  # ... of the latest but currentTime (the hold)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.host.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        self.host.disconnected(self)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            messages = self.reader.feed(data)
        except ProtocolError as exc:
            log.warning("client %s (%s): %s; closing", self.client_id, self.peer, exc)
            self.abort()
            return
        for fields in messages:
            if self.closed:
                return
            try:
                self._handle(fields)
            except ProtocolError as exc:
                log.warning("client %s (%s): %s; closing", self.client_id, self.peer, exc)
                self.abort()
                return
        self.flush()

    def _handle(self, fields: list[str]) -> None:
        if not self.server_version:
            self.server_version = p.negotiate(fields[0])
            self.send(p.msg_server_hello(self.server_version, self.host.connection_time()))
            log.debug("client %s: handshake, server version %d", self.peer, self.server_version)
            return
        if not self.ready:
            if fields[0] != "71":
                raise ProtocolError(f"expected startApi (71), got message {fields[0]!r}")
            r = Reader(fields)
            try:
                r.integer()
                client_id = r.integer()
            except RequestError as exc:
                raise ProtocolError(str(exc)) from None
            self.host.start_api(self, client_id)
            return
        self.host.request(self, fields)

    # output
    def send(self, msg: bytes) -> None:
        if self.closed:
            return
        self._out.append(msg)
        self.messages_sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def send_many(self, msgs: Iterable[bytes]) -> None:
        for m in msgs:
            self.send(m)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def send_now(self, msgs: list[bytes]) -> None:
        """Send and flush at once (a delayed delivery falling due)."""
        if not self.closed:
            self.send_many(msgs)
            self.flush()

    def error(self, req_id: int, code: int, text: str, advanced: str = "") -> None:
        log.info("client %s: error %d reqId %d: %s", self.client_id, code, req_id, text)
        self.send(p.msg_error(req_id, code, text, advanced, sv=self.server_version))

    def close_after_flush(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    @property
    def pending_output(self) -> bool:
        """Messages queued but not yet written to the transport."""
        return bool(self._out)

    @property
    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


# ---- subscriptions (per connection; the market data desk serves them)


@dataclass
class HistSub:
    session: ClientSession
    req_id: int
    stock: StockInfo
    minutes: int
    use_rth: bool
    format_date: int
    last_start: int
    bucket: tuple[int, int] = (0, 0)


@dataclass
class RtSub:
    session: ClientSession
    req_id: int
    stock: StockInfo


@dataclass
class MktSub:
    session: ClientSession
    req_id: int
    stock: StockInfo
    ticks: TickState = field(default_factory=TickState)


Sub = HistSub | RtSub | MktSub

"""The client sessions desk: the API port, the connections (`connection.ClientSession`), client
ids, the startApi greeting, the message registry every desk registers its handlers in, and where
order messages go while connectivity is lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from momentumbot.gateway import protocol as p
from momentumbot.gateway.clock import Monotonic, Timer
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import ny_time
from momentumbot.gateway.protocol import Reader, RequestError

log = logging.getLogger("momentumbot.gateway")

CONNECTIVITY_LOST = (1100, "Connectivity between IB and Trader Workstation has been lost.")
FARMS_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)

Handler = Callable[[ClientSession, Reader], None]
Handlers = dict[int, Handler]


def register(handlers: Handlers, own: Mapping[int, Handler]) -> None:
    """Add a desk's handlers to the registry; a message id served twice is a bug."""
    for msg_id, fn in own.items():
        if msg_id in handlers:
            raise ValueError(f"message {msg_id} already has a handler")
        handlers[msg_id] = fn


def ignore(s: ClientSession, r: Reader) -> None:
    """A request that needs no answer."""


class SessionDesk:
    """Connections and client ids. A client id is taken while its client is connected, when the
    `client-id-in-use` fault reserves it, and for `hold-client-id` real seconds after its socket
    closed (on the injected monotonic clock)."""

    def __init__(
        self,
        *,
        host: str,
        accounts: tuple[str, ...],
        faults: Faults,
        real: Monotonic,
        stats: dict[str, int],
        market_time: Callable[[], int],
        next_valid_id: Callable[[], int],
        on_disconnect: Callable[[ClientSession], None],
    ) -> None:
        self.host = host
        self.accounts = accounts
        self.faults = faults
        self.real = real
        self.stats = stats
        self._market_time = market_time
        self._next_valid_id = next_valid_id
        self._on_disconnect = on_disconnect
        self.handlers: Handlers = {}
        self.sessions: set[ClientSession] = set()
        self.clients: dict[int, ClientSession] = {}
        self.held_ids: dict[int, float] = {}  # client id -> real time it is free again
        self.outage = False
        self.drop_order_events = False
        # what a client hears while connectivity is lost: 1100, or 2110 (`farm-broken`)
        self.outage_error = CONNECTIVITY_LOST
        # the farm messages of the greeting (the farms desk replaces it)
        self.farm_greeting: Callable[[], list[tuple[int, str]]] = lambda: list(FARMS_OK)
        self.closing = False
        self._server: asyncio.Server | None = None
        self._bound_port = 0
        self._reopen_timer: Timer | None = None
        self._reopen_task: asyncio.Task[None] | None = None

    # ---- the port

    @property
    def port(self) -> int:
        return self._bound_port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def listen(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientSession(self), self.host, port, reuse_address=True
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    def close_port(self, seconds: float) -> None:
        """Close the API port for `seconds` real seconds: connects are refused by the OS
        (ECONNREFUSED at once), as while TWS / IB Gateway restarts."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self._cancel_reopen()
        log.warning("port %d closed for %.1f s", self._bound_port, seconds)
        self._reopen_timer = self.real.call_later(seconds, self._reopen)

    def _reopen(self) -> None:
        self._reopen_timer = None
        if not self.closing:
            self._reopen_task = asyncio.ensure_future(self._listen_again())

    async def _listen_again(self) -> None:
        while not self.closing:
            try:
                await self.listen(self._bound_port)
            except OSError as exc:
                log.error("cannot listen on port %d again (%s); retrying", self._bound_port, exc)
                await asyncio.sleep(0.5)
                continue
            log.warning("port %d open again", self._bound_port)
            return

    def _cancel_reopen(self) -> None:
        if self._reopen_timer is not None:
            self._reopen_timer.cancel()
            self._reopen_timer = None
        if self._reopen_task is not None:
            self._reopen_task.cancel()
            self._reopen_task = None

    async def stop(self) -> None:
        self.closing = True
        self._cancel_reopen()
        for s in list(self.sessions):
            s.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def drop_all(self, down_seconds: float) -> None:
        """Every socket dropped; the port closed for `down_seconds` real seconds if > 0."""
        if down_seconds > 0:
            self.close_port(down_seconds)
        for s in list(self.sessions):
            s.abort()
        self.clients.clear()

    # ---- connections (SessionHost)

    def connection_time(self) -> str:
        t = ny_time(self._market_time())
        return t.strftime("%Y%m%d %H:%M:%S ") + (t.tzname() or "EST")

    def connected(self, s: ClientSession) -> None:
        self.stats["connections"] += 1
        self.sessions.add(s)
        log.info("connection from %s", s.peer)

    def disconnected(self, s: ClientSession) -> None:
        self.sessions.discard(s)
        self._on_disconnect(s)
        if s.ready and self.clients.get(s.client_id) is s:
            del self.clients[s.client_id]
            if self.faults.hold_client_id_seconds > 0:
                self.held_ids[s.client_id] = self.real.now() + self.faults.hold_client_id_seconds
        log.info("client %s (%s) disconnected", s.client_id, s.peer)

    def client_id_taken(self, client_id: int) -> bool:
        if client_id in self.clients or client_id in self.faults.reserved_client_ids:
            return True
        until = self.held_ids.get(client_id)
        if until is not None:
            if self.real.now() < until:
                return True
            del self.held_ids[client_id]
        return False

    def start_api(self, s: ClientSession, client_id: int) -> None:
        if self.client_id_taken(client_id):
            log.info("client id %d is in use; refusing %s", client_id, s.peer)
            s.error(
                -1,
                326,
                "Unable to connect as the client id is already in use. Retry with a unique client id.",
            )
            s.close_after_flush()
            return
        s.client_id = client_id
        s.ready = True
        self.clients[client_id] = s
        s.send(p.msg_next_valid_id(self._next_valid_id()))
        s.send(p.msg_managed_accounts(self.accounts))
        if self.outage:
            s.error(-1, *self.outage_error)
        else:
            for code, text in self.farm_greeting():
                s.error(-1, code, text)
        log.info("client %d ready (%s)", client_id, s.peer)

    def request(self, s: ClientSession, fields: list[str]) -> None:
        self.stats["requests"] += 1
        s.last_request = self.real.now()
        s.recent_requests.append(s.last_request)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("client %d >>> %s", s.client_id, ",".join(fields))
        try:
            msg_id = int(fields[0])
        except ValueError:
            s.error(-1, 320, f"Error reading request: message id {fields[0]!r} is not a number")
            return
        if msg_id != 49:  # an idle client asks the time now and then
            s.last_not_time = s.last_request
        handler = self.handlers.get(msg_id)
        if handler is None:
            s.error(
                -1, 320, f"Error reading request: message id {msg_id} is not served by this gateway"
            )
            return
        r = Reader(fields)
        try:
            handler(s, r)
        except RequestError as exc:
            s.error(-1, 320, f"Error reading request: {exc}")
        except ValueError as exc:
            s.error(-1, 321, f"Error validating request: {exc}")

    # ---- who hears what

    def live(self) -> list[ClientSession]:
        """Sessions that get market data and account pushes now (none during an outage)."""
        if self.outage:
            return []
        return [s for s in self.sessions if s.ready and not s.closed]

    def held_back(self, s: ClientSession, msgs: list[bytes]) -> bool:
        """During an outage order messages are held (or dropped): True if these were."""
        if not self.outage:
            return False
        if not self.drop_order_events:
            s.held.extend(msgs)
        return True

    def route(self, client_id: int, build: Callable[[int], list[bytes]]) -> None:
        """Order messages go to the session of the client that placed the order, built by
        `build(server_version)` at the version that session speaks."""
        s = self.clients.get(client_id)
        if s is None:
            return
        msgs = build(s.server_version)
        if not self.held_back(s, msgs):
            s.send_many(msgs)

    def lose_link(
        self, drop_order_events: bool, error: tuple[int, str] = CONNECTIVITY_LOST
    ) -> None:
        """1100 (or `error`, e.g. 2110) to every client; data stops, order messages held."""
        self.outage = True
        self.drop_order_events = drop_order_events
        self.outage_error = error
        for s in self.sessions:
            if s.ready:
                s.error(-1, *error)
                s.flush()

    def restore_link(self, data_lost: bool, drop_subs: Callable[[ClientSession], Any]) -> None:
        """1102, or 1101 with every subscription dropped; held order messages go out."""
        self.outage = False
        for s in list(self.sessions):
            if not s.ready:
                continue
            if data_lost:
                drop_subs(s)
                s.error(-1, 1101, "Connectivity between IB and TWS has been restored- data lost.")
            else:
                s.error(
                    -1,
                    1102,
                    "Connectivity between IB and Trader Workstation has been restored - data maintained.",
                )
            s.send_many(s.held)
            s.held.clear()
            s.flush()

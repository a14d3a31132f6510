"""Connecting ib_async to TWS / IB Gateway, for the IB broker adapter: the connection
settings, a refused port or a handshake the other side closes failing at once, and error
326 (client id in use) retried, then (when allowed) the next client ids tried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from ib_async import IB

from momentumbot.config.schema import BrokerConfig
from momentumbot.execution.broker_protocol import (
    BrokerUnavailable,
    ClientIdInUse,
    ConnectionRefused,
)

log = logging.getLogger("momentumbot.broker")

CLIENT_ID_IN_USE = 326


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    client_id_fallbacks: int = 3
    account: str = ""
    connect_timeout: float = 10.0
    request_timeout: float = 60.0
    history_requests_per_minute: float = 120.0
    pacing_backoff_seconds: float = 2.0
    max_history_retries: int = 8
    client_id_retry_seconds: float = 6.0
    tws_timezone: str = "America/New_York"  # the TWS login time zone (times without a zone)

    @classmethod
    def from_config(
        cls,
        broker: BrokerConfig,
        *,
        host: str | None = None,
        port: int | None = None,
        client_id: int | None = None,
    ) -> BrokerSettings:
        return cls(
            host=host or broker.host,
            port=int(port if port is not None else broker.port),
            client_id=int(client_id if client_id is not None else broker.client_id),
            client_id_fallbacks=broker.client_id_fallbacks,
            account=broker.account,
            tws_timezone=broker.tws_timezone,
            connect_timeout=broker.connect_timeout_seconds,
            request_timeout=broker.request_timeout_seconds,
            history_requests_per_minute=broker.history_requests_per_minute,
        )


async def connect(
    ib: IB, s: BrokerSettings, *, allow_fallback: bool, errors: list[tuple[int, str]]
) -> int:
    """Connect and synchronise. Error 326 (client id in use): retry the id for a few
    seconds (a crashed bot's socket closes lazily), then, with `allow_fallback`, try the
    next ids; the client id connected. Raises BrokerUnavailable with what to check. `errors`
    collects the error messages that arrive while connecting (the broker's error handler)."""
    ids = [s.client_id]
    if allow_fallback:
        ids += [s.client_id + i for i in range(1, s.client_id_fallbacks + 1)]
    deadline = time.monotonic() + s.client_id_retry_seconds
    for i, cid in enumerate(ids):
        while True:
            try:
                await _connect_once(ib, s, cid, errors)
            except ClientIdInUse:
                if i == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    continue
                log.warning("client id %d is in use", cid)
                break
            if cid != s.client_id:
                log.warning("client id %d was in use; connected as client %d", s.client_id, cid)
            return cid
    tried = ", ".join(str(c) for c in ids)
    raise ClientIdInUse(
        f"client id {tried} in use at {s.host}:{s.port} (error 326): another program "
        "(or a bot that has not let go yet) uses it; stop it or set [broker] client_id"
        + ("" if allow_fallback else "; this run has working orders that belong to it")
    )


async def _connect_once(
    ib: IB, s: BrokerSettings, client_id: int, errors: list[tuple[int, str]]
) -> None:
    """One connection attempt. A refused connection fails at once (ConnectionRefused), and
    so does a socket the other side closes during the handshake; only a connection that
    opens and then says nothing waits for the connect timeout."""
    errors.clear()
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[str] = loop.create_future()

    def on_api_error(msg: str) -> None:
        if not closed.done():
            closed.set_result(str(msg))

    def on_socket_closed(msg: str) -> None:
        on_api_error(msg or "the other side closed the socket")

    client = ib.client
    client.apiError += on_api_error
    client.conn.disconnected += on_socket_closed
    attempt = asyncio.ensure_future(
        ib.connectAsync(
            s.host,
            s.port,
            clientId=client_id,
            timeout=s.connect_timeout,
            raiseSyncErrors=True,
        )
    )
    try:
        await asyncio.wait({attempt, closed}, return_when=asyncio.FIRST_COMPLETED)
        if not attempt.done():
            await asyncio.sleep(0)  # the attempt ends in the same turn when it failed
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            with contextlib.suppress(Exception):
                ib.disconnect()
            if any(code == CLIENT_ID_IN_USE for code, _ in errors):
                raise ClientIdInUse(f"client id {client_id} is in use")
            raise BrokerUnavailable(
                f"{s.host}:{s.port} closed the connection during the API handshake "
                f"({closed.result()}); is this the API port of TWS / IB Gateway, and is "
                "this host allowed to connect (Trusted IPs)?"
            )
        attempt.result()
    except ConnectionRefusedError:
        raise ConnectionRefused(
            f"cannot connect to {s.host}:{s.port}: connection refused; is TWS / IB Gateway "
            "(or `momentumbot gateway`) running with its API on this port?"
        ) from None
    except (TimeoutError, ConnectionError, OSError) as exc:
        if any(code == CLIENT_ID_IN_USE for code, _ in errors):
            raise ClientIdInUse(f"client id {client_id} is in use") from None
        if not isinstance(exc, (TimeoutError, ConnectionError)):
            raise BrokerUnavailable(f"cannot connect to {s.host}:{s.port}: {exc}") from None
        raise BrokerUnavailable(
            f"{s.host}:{s.port} did not complete the TWS API handshake ({exc!r}); is this "
            "the API port of TWS / IB Gateway, and is the client id free?"
        ) from None
    finally:
        client.apiError -= on_api_error
        client.conn.disconnected -= on_socket_closed
        if not attempt.done():
            attempt.cancel()

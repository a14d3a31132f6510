"""The broker's listener for a whole run: each event under the supervisor (a failing handler
is reported, not lost in the client library's log), handed to the session once it exists.
Before it exists (connecting, qualifying) only the link's state is kept: order events cannot
be this run's yet, and the start reconciles whatever happened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.session import TradingSession
from momentumbot.trading.supervisor import Supervisor

log = logging.getLogger("momentumbot.trade")


class BrokerRelay:
    """Implements `BrokerListener`; see the module docstring."""

    def __init__(self, sup: Supervisor, conn: ConnectionState) -> None:
        self.session: TradingSession | None = None
        self._conn = conn
        g = sup.guard
        self.on_execution = g("fills", self._to_events("on_execution"))
        self.on_commission = g("fills", self._to_events("on_commission"))
        self.on_order_status = g("orders", self._to_events("on_order_status"))
        self.on_order_rejected = g("orders", self._to_events("on_order_rejected"))
        self.on_order_note = g("orders", self._to_events("on_order_note"))
        self.on_modify_failed = g("orders", self._to_events("on_modify_failed"))
        self.on_connectivity_lost = g("connection", self._connectivity_lost)
        self.on_connectivity_restored = g("connection", self._connectivity_restored)
        self.on_disconnected = g("connection", self._disconnected)
        self.on_stream_lost = g("streams", self._stream_lost, policy="retry")

    def _to_events(self, name: str) -> Callable[..., None]:
        def call(*args: Any, **kwargs: Any) -> None:
            if self.session is not None:
                getattr(self.session.events, name)(*args, **kwargs)

        return call

    def _connectivity_lost(self) -> None:
        if self.session is not None:
            self.session.connection.on_connectivity_lost()
        else:
            self._conn.outage = True

    def _connectivity_restored(self, *, data_lost: bool) -> None:
        if self.session is not None:
            self.session.connection.on_connectivity_restored(data_lost=data_lost)
        else:
            self._conn.outage = False

    def _stream_lost(self, symbol: str, why: str, *, no_market_data: bool) -> None:
        if self.session is not None:
            self.session.health.on_stream_lost(symbol, why, no_market_data=no_market_data)
        else:
            log.warning("%s: %s while starting (the start subscribes it again)", symbol, why)

    def _disconnected(self) -> None:
        if self.session is not None:
            self.session.connection.on_disconnected()
        else:
            self._conn.connected = False
            log.warning("disconnected while starting")

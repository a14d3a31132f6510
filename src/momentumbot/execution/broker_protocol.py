"""What a broker reports and what it tells its listener: plain values, no I/O, no ib_async,
so the journal, reconciliation and the trader depend on these and not on the IB adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from momentumbot.domain.units import NS_PER_MINUTE


@dataclass(frozen=True)
class ExecReport:
    """One execution as IB reported it."""

    exec_id: str
    order_ref: str
    perm_id: int
    ib_order_id: int
    client_id: int
    account: str
    symbol: str
    side: int  # +1 bought, -1 sold
    quantity: int
    price: float
    time_ns: int
    commission_micro: int | None  # None until the commission report arrives

    @property
    def label_ns(self) -> int:
        """The minute (bar label) the execution happened in."""
        return self.time_ns - self.time_ns % NS_PER_MINUTE


@dataclass(frozen=True)
class OrderReport:
    """One order as IB reported it (open, completed, or a status change)."""

    order_ref: str
    perm_id: int
    ib_order_id: int
    client_id: int
    symbol: str
    side: int
    quantity: int
    filled: int
    status: str  # working | filled | cancelled
    ib_status: str
    why: str = ""


@dataclass
class BrokerSnapshot:
    """What IB knows, for reconciliation."""

    account: str
    open_orders: list[OrderReport]
    completed_orders: list[OrderReport]
    executions: list[ExecReport]
    positions: dict[str, int]
    cash_micro: int | None


@dataclass(frozen=True)
class BarArrays:
    ts: np.ndarray  # int64 UTC ns, bar start
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class BrokerListener(Protocol):
    def on_execution(self, report: ExecReport) -> None: ...
    def on_commission(self, exec_id: str, commission_micro: int) -> None: ...
    def on_order_status(self, report: OrderReport) -> None: ...
    def on_order_error(self, order_ref: str, code: int, text: str) -> None: ...
    def on_connectivity(self, code: int, text: str) -> None: ...
    def on_disconnected(self) -> None: ...

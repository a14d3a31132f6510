"""Pre-trade limits on the orders the engine decided at one minute, and the daily-loss breaker.

Pure functions of arrays: the engine decides, these cut or refuse buys before anything is
journaled or sent. Sells (exits, resizes down, the flatten) always pass: they reduce risk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from momentumbot.config.schema import RiskConfig


@dataclass(frozen=True)
class RiskLimits:
    """0 means no limit."""

    max_position_value: float = 0.0
    max_gross_exposure: float = 0.0
    max_orders_per_minute: int = 0
    max_daily_loss: float = 0.0

    @classmethod
    def from_config(cls, risk: RiskConfig) -> RiskLimits:
        return cls(
            max_position_value=float(risk.max_position_value),
            max_gross_exposure=float(risk.max_gross_exposure),
            max_orders_per_minute=int(risk.max_orders_per_minute),
            max_daily_loss=float(risk.max_daily_loss),
        )

    def as_dict(self) -> dict[str, float]:
        """Every limit by its [risk] key (0 = off), as the page, the status and summary.json
        name them."""
        return {
            "max_position_value": self.max_position_value,
            "max_gross_exposure": self.max_gross_exposure,
            "max_orders_per_minute": float(self.max_orders_per_minute),
            "max_daily_loss": self.max_daily_loss,
        }

    def set_limits(self) -> dict[str, float]:
        """The limits that are set (not 0)."""
        return {name: value for name, value in self.as_dict().items() if value > 0}

    def missing_for_live(self) -> list[str]:
        """Limits a live account must have set."""
        out = []
        if self.max_position_value <= 0:
            out.append("max_position_value")
        if self.max_gross_exposure <= 0:
            out.append("max_gross_exposure")
        if self.max_daily_loss <= 0:
            out.append("max_daily_loss")
        return out


@dataclass(frozen=True)
class Adjustment:
    """An order decided this minute, cut to `quantity` shares (0: refused) and why."""

    oid: int
    quantity: int
    why: str


def pre_trade(
    new_orders: Sequence[int],
    *,
    symbol: np.ndarray,
    side: np.ndarray,
    quantity: np.ndarray,
    filled: np.ndarray,
    working_ids: Sequence[int],
    position: np.ndarray,
    price: np.ndarray,
    limits: RiskLimits,
    blocked: np.ndarray | None = None,
    halted: str = "",
) -> list[Adjustment]:
    """Cut or refuse the new orders (rows of the order table, in id order) that break a limit.

    `working_ids` are the rows working after the step, the new ones included; `price` is each
    symbol's latest close; `blocked[s]` refuses buys of symbol s (no live market data).
    With `halted` (a reason) every new order is refused.
    """
    out: list[Adjustment] = []
    new_set = set(new_orders)
    if halted:
        return [Adjustment(oid, 0, f"halted: {halted}") for oid in new_orders]
    exposure = 0.0
    if limits.max_gross_exposure > 0:
        px = np.nan_to_num(price)
        exposure = float(np.dot(np.maximum(position, 0).astype(np.float64), px))
        for oid in working_ids:
            if oid in new_set or side[oid] <= 0:
                continue
            exposure += float(quantity[oid] - filled[oid]) * px[symbol[oid]]
    buys = 0
    for oid in new_orders:
        if side[oid] <= 0:
            continue
        s = int(symbol[oid])
        qty = int(quantity[oid])
        p = float(price[s])
        why = ""
        if blocked is not None and blocked[s]:
            out.append(Adjustment(oid, 0, "no live market data for this symbol"))
            continue
        if limits.max_orders_per_minute and buys >= limits.max_orders_per_minute:
            out.append(Adjustment(oid, 0, f"max_orders_per_minute {limits.max_orders_per_minute}"))
            continue
        if not (p > 0) or math.isnan(p):
            continue
        if limits.max_position_value > 0:
            room = math.floor(limits.max_position_value / p) - int(position[s])
            if room < qty:
                qty = max(room, 0)
                why = f"max_position_value {limits.max_position_value:g}"
        if limits.max_gross_exposure > 0 and qty > 0:
            room = math.floor(max(limits.max_gross_exposure - exposure, 0.0) / p)
            if room < qty:
                qty = room
                why = f"max_gross_exposure {limits.max_gross_exposure:g}"
        if qty != int(quantity[oid]):
            out.append(Adjustment(oid, qty, why))
        if qty > 0:
            buys += 1
            exposure += qty * p
    return out


def daily_loss_breached(session_start_equity: float, equity: float, limits: RiskLimits) -> bool:
    """Equity has fallen max_daily_loss or more below the session's first equity."""
    return limits.max_daily_loss > 0 and session_start_equity - equity >= limits.max_daily_loss

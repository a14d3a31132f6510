"""A deliberately plain reference for the gateway's fills: one loop over the session's minutes
calling execution.matching.match_in_bar, written from STRATEGY.md section 1 without the gateway."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.execution.costs import BUY, SELL, CostParams
from momentumbot.execution.matching import match_in_bar

MINUTE = 60_000_000_000


@dataclass
class RefOrder:
    order_id: int
    symbol: str
    side: int  # BUY / SELL
    qty: int
    placed_ns: int
    filled: int = 0
    value: float = 0.0
    rated: float = 0.0
    done: bool = False


@dataclass(frozen=True)
class RefFill:
    order_id: int
    bar_ns: int
    qty: int
    price: float
    commission_micro: int


def reference_fills(
    orders: list[RefOrder],
    frames: dict[str, pd.DataFrame],
    sessions: pd.DatetimeIndex,
    cash_micro: int,
    p: CostParams,
) -> tuple[list[RefFill], int, dict[str, int]]:
    """Fill market DAY orders: each from the first bar after the latest closed bar when it was
    placed, at that bar's open through match_in_bar; sells first, then buys, in order-id order;
    what is left at the close of the session expires."""
    cal = TradingCalendar("XNYS")
    grid = cal.grid(sessions)
    bars: dict[str, dict[int, tuple[float, float]]] = {}
    for sym, df in frames.items():
        ts = (
            df["ts"]
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .to_numpy("datetime64[ns]")
            .view(np.int64)
        )
        bars[sym] = {
            int(t): (float(o), float(v))
            for t, o, v in zip(ts, df["open"].to_numpy(), df["volume"].to_numpy(), strict=True)
        }
    cash = cash_micro
    position: dict[str, int] = defaultdict(int)
    month_shares: dict[Any, float] = defaultdict(float)
    fills: list[RefFill] = []
    for k, label in enumerate(grid.label_ns.tolist()):
        session_close = int(grid.close_ns[grid.session[k]])
        month = pd.Timestamp(label, tz="UTC").tz_convert("America/New_York")
        month_key = (month.year, month.month)
        todo = [
            o
            for o in orders
            if not o.done
            and o.placed_ns - o.placed_ns % MINUTE <= label
            and label in bars[o.symbol]
        ]
        todo.sort(key=lambda o: (0 if o.side == SELL else 1, o.order_id))
        for o in todo:
            bar_open, volume = bars[o.symbol][label]
            qty, price, value_micro, commission_micro, rated = match_in_bar(
                o.side, o.qty - o.filled, position[o.symbol], bar_open, volume, False, cash,
                month_shares[month_key], float(o.filled), o.value, o.rated, p,
            )  # fmt: skip
            if qty <= 0:
                continue
            if o.side == BUY:
                cash -= value_micro + commission_micro
                position[o.symbol] += qty
            else:
                cash += value_micro - commission_micro
                position[o.symbol] -= qty
            month_shares[month_key] += qty
            o.filled += qty
            o.value += qty * price
            o.rated += rated
            o.done = o.filled == o.qty
            fills.append(RefFill(o.order_id, label, qty, price, commission_micro))
        if label + MINUTE == session_close:
            for o in orders:
                if o.placed_ns < session_close:
                    o.done = True
    return fills, cash, dict(position)

"""Hand-built minute bars for engine scenarios: a warm-up session then run sessions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.engine.backtest import BacktestResult, run_backtest
from momentumbot.testing import MemoryBarSource

CAL = TradingCalendar("XNYS")
WARMUP = "2024-03-04"  # a Monday; the run starts the next day
RUN = ("2024-03-05", "2024-03-06", "2024-03-07")


def session_bars(
    session: str,
    *,
    price: float = 100.0,
    volume: float = 10_000.0,
    closes: Mapping[int, float] | None = None,
    opens: Mapping[int, float] | None = None,
    volumes: Mapping[int, float] | None = None,
    missing: Iterable[int] = (),
    fill_forward: bool = True,
) -> pd.DataFrame:
    """One session of bars. closes/opens/volumes map minute index (0 = 09:30) to a value;
    with fill_forward a close holds until the next one given, and each open is the
    previous bar's close unless given."""
    grid = CAL.grid(CAL.sessions(session, session))
    n = grid.n_minutes
    close = np.full(n, price)
    if closes:
        last = price
        for i in range(n):
            if i in closes:
                last = closes[i]
            close[i] = last if fill_forward else closes.get(i, price)
    open_ = np.r_[price, close[:-1]]
    for i, v in (opens or {}).items():
        open_[i] = v
    vol = np.full(n, volume)
    for i, v in (volumes or {}).items():
        vol[i] = v
    keep = np.ones(n, bool)
    keep[list(missing)] = False
    return pd.DataFrame(
        {
            "ts": grid.label_ns[keep],
            "open": open_[keep],
            "high": np.maximum(open_, close)[keep],
            "low": np.minimum(open_, close)[keep],
            "close": close[keep],
            "volume": vol[keep],
        }
    )


def run(
    frames: Mapping[str, list[pd.DataFrame]],
    *,
    start: str = RUN[0],
    end: str | None = None,
    **config: Any,
) -> BacktestResult:
    data = {sym: pd.concat(parts, ignore_index=True) for sym, parts in frames.items()}
    cfg = AppConfig(symbols=list(data), **config)
    return run_backtest(cfg, MemoryBarSource(data), start=start, end=end or start)


def minute_label(session: str, minute: int) -> pd.Timestamp:
    grid = CAL.grid(CAL.sessions(session, session))
    return pd.Timestamp(int(grid.label_ns[minute]), tz="UTC")


def iso(ts: pd.Timestamp) -> str:
    return ts.isoformat()

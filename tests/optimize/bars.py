"""Hand-built bar stores for the sweep tests: two regimes where a different `step` wins,
and pure noise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import synthetic_sessions

Path_ = Callable[[np.ndarray], np.ndarray]


def fade_day(minute: np.ndarray) -> np.ndarray:
    """Regime A, percent from the open: a smooth climb to +1.9 % by 11:30, back to -0.5 %
    by 13:30. A 0.5 % step trails it closely; a 2 % step never climbs a rung."""
    up = 1.9 * np.minimum(minute, 120) / 120
    down = 2.4 * np.clip(minute - 120, 0, 120) / 120
    return up - down


def choppy_trend_day(minute: np.ndarray) -> np.ndarray:
    """Regime B: +4 % over the day under a +-0.4 % zigzag with a 20-minute period. A small
    step is stopped out on every pullback and buys back higher; a 2 % step rides the trend."""
    phase = (minute % 20) / 20.0
    tri = np.where(phase < 0.5, 4 * phase - 1, 3 - 4 * phase)
    return 4.0 * minute / 390 + 0.4 * tri


def _frames(
    sessions: pd.DatetimeIndex, day_path: Callable[[int], Path_], prices: list[float]
) -> list[pd.DataFrame]:
    grid = TradingCalendar("XNYS").grid(sessions)
    minute = grid.minute.astype(float)
    move = np.zeros(grid.n_minutes)
    for i in range(len(sessions)):
        rows = grid.session == i
        move[rows] = day_path(i)(minute[rows])
    frames = []
    for j, base in enumerate(prices):
        close = np.round(base * (1 + (move + 0.01 * j) / 100), 2)
        open_ = np.where(grid.minute == 0, base, np.r_[base, close[:-1]])
        frames.append(
            pd.DataFrame(
                {
                    "ts": pd.DatetimeIndex(grid.label_ns.astype("datetime64[ns]")).tz_localize(
                        "UTC"
                    ),
                    "open": open_,
                    "high": np.maximum(open_, close),
                    "low": np.minimum(open_, close),
                    "close": close,
                    "volume": np.full(grid.n_minutes, 20_000, dtype=np.int64),
                }
            )
        )
    return frames


def regime_store(root: Path, first: str, n_a: int, n_b: int) -> tuple[BarStore, list[str]]:
    """n_a sessions of regime A, then n_b of regime B, for three symbols."""
    sessions = synthetic_sessions(first, n_a + n_b)
    symbols = ["AAA", "BBB", "CCC"]
    frames = _frames(
        sessions, lambda i: fade_day if i < n_a else choppy_trend_day, [50.0, 80.0, 120.0]
    )
    store = BarStore(root)
    for sym, frame in zip(symbols, frames, strict=True):
        store.write(sym, frame, source="test regimes")
    return store, symbols


def noise_store(
    root: Path, first: str, n: int, symbols: int = 4, seed: int = 3
) -> tuple[BarStore, list[str]]:
    """Gaussian random walks (0.08 % a minute), constant volume: nothing to find."""
    sessions = synthetic_sessions(first, n)
    grid = TradingCalendar("XNYS").grid(sessions)
    rng = np.random.default_rng(seed)
    store = BarStore(root)
    names = [f"NZ{i}" for i in range(symbols)]
    for sym in names:
        log_close = np.log(40.0) + np.cumsum(rng.normal(0.0, 0.0008, grid.n_minutes))
        close = np.round(np.exp(log_close), 2)
        open_ = np.r_[40.0, close[:-1]]
        frame = pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(grid.label_ns.astype("datetime64[ns]")).tz_localize("UTC"),
                "open": open_,
                "high": np.maximum(open_, close),
                "low": np.minimum(open_, close),
                "close": close,
                "volume": np.full(grid.n_minutes, 20_000, dtype=np.int64),
            }
        )
        store.write(sym, frame, source="test noise")
    return store, names

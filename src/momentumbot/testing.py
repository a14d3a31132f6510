"""In-memory fakes of the project's protocols, for tests and examples."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


class MemoryBars(NamedTuple):
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class MemoryInfo(NamedTuple):
    symbol: str
    first_ns: int
    last_ns: int
    rows: int


class MemoryBarSource:
    """A bar source over in-memory frames (columns ts, open, high, low, close, volume;
    ts as UTC datetimes or int64 ns, bar start labels)."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self._bars: dict[str, MemoryBars] = {}
        for sym, df in frames.items():
            ts = df["ts"]
            if pd.api.types.is_datetime64_any_dtype(ts):
                ts_ns = (
                    ts.dt.tz_convert("UTC")
                    .dt.tz_localize(None)
                    .to_numpy("datetime64[ns]")
                    .view(np.int64)
                )
            else:
                ts_ns = ts.to_numpy(np.int64)
            order = np.argsort(ts_ns, kind="stable")
            self._bars[sym] = MemoryBars(
                ts=ts_ns[order],
                open=df["open"].to_numpy(np.float64)[order],
                high=df["high"].to_numpy(np.float64)[order]
                if "high" in df
                else df["open"].to_numpy(np.float64)[order],
                low=df["low"].to_numpy(np.float64)[order]
                if "low" in df
                else df["open"].to_numpy(np.float64)[order],
                close=df["close"].to_numpy(np.float64)[order],
                volume=df["volume"].to_numpy(np.float64)[order],
            )

    def symbols(self) -> list[str]:
        return sorted(self._bars)

    def has(self, symbol: str) -> bool:
        return symbol in self._bars

    def info(self, symbol: str) -> MemoryInfo:
        b = self._bars[symbol]
        return MemoryInfo(symbol, int(b.ts[0]), int(b.ts[-1]), int(b.ts.shape[0]))

    def read_arrays(self, symbol: str, start_ns: int, end_ns: int) -> MemoryBars:
        b = self._bars[symbol]
        lo = int(np.searchsorted(b.ts, start_ns, side="left"))
        hi = int(np.searchsorted(b.ts, end_ns, side="left"))
        return MemoryBars(*(col[lo:hi] for col in b))

"""A bar source (data.source.BarSource) over bars held in memory: for examples, tests and the
compiled-code warm-up, which backtest without a store."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from momentumbot.data.store import SymbolInfo
from momentumbot.domain.bars import BarArrays, BarArraysLike


def _ts_ns(ts: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(ts):
        index = pd.DatetimeIndex(ts)
        if index.tz is None:
            raise ValueError("ts must be timezone-aware (UTC bar start labels) or int64 ns")
        return index.tz_convert("UTC").as_unit("ns").asi8
    return ts.to_numpy(np.int64)


class MemoryBarSource:
    """A bar source (data.source.BarSource) over in-memory bars: per symbol a DataFrame with
    columns ts (UTC datetimes or int64 ns, bar start), open, high, low, close, volume (high
    and low default to the open), or any object with those array attributes."""

    def __init__(self, bars: Mapping[str, pd.DataFrame | BarArraysLike]) -> None:
        self._bars: dict[str, BarArrays] = {}
        for sym, data in bars.items():
            if isinstance(data, pd.DataFrame):
                ts = _ts_ns(data["ts"])
                cols = {
                    name: data[name if name in data else "open"].to_numpy(np.float64)
                    for name in ("open", "high", "low", "close", "volume")
                }
            else:
                ts = np.asarray(data.ts, dtype=np.int64)
                cols = {
                    name: np.asarray(getattr(data, name), dtype=np.float64)
                    for name in ("open", "high", "low", "close", "volume")
                }
            order = np.argsort(ts, kind="stable")
            self._bars[sym.upper()] = BarArrays(
                ts[order], cols["open"][order], cols["high"][order], cols["low"][order],
                cols["close"][order], cols["volume"][order],
            )  # fmt: skip

    def symbols(self) -> list[str]:
        return sorted(self._bars)

    def has(self, symbol: str) -> bool:
        return symbol in self._bars

    def info(self, symbol: str) -> SymbolInfo:
        b = self._bars[symbol]
        if b.ts.shape[0] == 0:
            return SymbolInfo(symbol, 0, 0, 0)
        return SymbolInfo(symbol, int(b.ts[0]), int(b.ts[-1]), int(b.ts.shape[0]))

    def read_arrays(self, symbol: str, start_ns: int, end_ns: int) -> BarArrays:
        b = self._bars[symbol]
        lo = int(np.searchsorted(b.ts, start_ns, side="left"))
        hi = int(np.searchsorted(b.ts, end_ns, side="left"))
        return b.slice(lo, hi)

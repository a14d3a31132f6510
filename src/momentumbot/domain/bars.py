"""Bars as arrays: the one type every layer passes around, and the protocol readers accept.

A bar is labelled by its START (UTC ns); one symbol's bars are parallel arrays sorted by `ts`.
The store returns `BarArrays`, the gateway replays them, tests build them; code that only reads
bars accepts anything shaped like them (`BarArraysLike`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class BarArraysLike(Protocol):
    """Bars of one symbol as arrays: ts (int64 UTC ns, bar start), prices, volume."""

    @property
    def ts(self) -> np.ndarray: ...
    @property
    def open(self) -> np.ndarray: ...
    @property
    def high(self) -> np.ndarray: ...
    @property
    def low(self) -> np.ndarray: ...
    @property
    def close(self) -> np.ndarray: ...
    @property
    def volume(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Bars of one symbol: ts int64 UTC ns (bar start, strictly increasing), prices float64,
    volume float64 (integer-valued). `len()` is the number of bars."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @staticmethod
    def empty() -> BarArrays:
        z = np.empty(0, dtype=np.float64)
        return BarArrays(np.empty(0, dtype=np.int64), z, z, z, z, z)

    @staticmethod
    def of(bars: BarArraysLike) -> BarArrays:
        """Any bar arrays as `BarArrays` with the canonical dtypes (no copy when they match)."""
        return BarArrays(
            np.asarray(bars.ts, dtype=np.int64),
            np.asarray(bars.open, dtype=np.float64),
            np.asarray(bars.high, dtype=np.float64),
            np.asarray(bars.low, dtype=np.float64),
            np.asarray(bars.close, dtype=np.float64),
            np.asarray(bars.volume, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def row(self, i: int) -> tuple[float, float, float, float, float]:
        """Bar i as plain floats (open, high, low, close, volume)."""
        return (
            self.open.item(i), self.high.item(i), self.low.item(i), self.close.item(i),
            self.volume.item(i),
        )  # fmt: skip

    def take(self, index: slice | np.ndarray) -> BarArrays:
        """The bars at `index` (a slice, or a boolean or integer array)."""
        return BarArrays(
            self.ts[index], self.open[index], self.high[index], self.low[index],
            self.close[index], self.volume[index],
        )  # fmt: skip

    def slice(self, i: int, j: int) -> BarArrays:
        return self.take(slice(i, j))

    def mask(self, keep: np.ndarray) -> BarArrays:
        return self.take(keep)

    def window(self, start_ns: int, end_ns: int) -> BarArrays:
        """Bars with start_ns <= ts < end_ns."""
        i = int(np.searchsorted(self.ts, start_ns, side="left"))
        j = int(np.searchsorted(self.ts, end_ns, side="left"))
        return self.take(slice(i, j))

"""Bars as arrays: the one type every layer passes around, and the protocol readers accept.

A bar is labelled by its START (UTC ns); one symbol's bars are parallel arrays sorted by `ts`.
The store returns `BarArrays`, the gateway replays them, tests build them; code that only reads
bars accepts anything shaped like them (`BarArraysLike`).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

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


class BarArrays(NamedTuple):
    """Bars of one symbol: ts int64 UTC ns (bar start, strictly increasing), prices float64,
    volume float64 (integer-valued)."""

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
            *(
                np.asarray(getattr(bars, name), dtype=np.float64)
                for name in ("open", "high", "low", "close", "volume")
            ),
        )

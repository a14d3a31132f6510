"""What code that reads bars needs from a store: the protocols BarStore satisfies and the
in-memory fake (momentumbot.testing.MemoryBarSource) implements."""

from __future__ import annotations

from typing import Protocol

from momentumbot.domain.bars import BarArraysLike


class SymbolInfoLike(Protocol):
    @property
    def first_ns(self) -> int: ...
    @property
    def last_ns(self) -> int: ...


class BarReader(Protocol):
    """Enough to replay bars (the simulated gateway)."""

    def symbols(self) -> list[str]: ...
    def read_arrays(self, symbol: str, start_ns: int, end_ns: int) -> BarArraysLike: ...


class BarSource(BarReader, Protocol):
    """Enough to backtest: also whether a symbol is there and the span of its bars."""

    def has(self, symbol: str) -> bool: ...
    def info(self, symbol: str) -> SymbolInfoLike: ...

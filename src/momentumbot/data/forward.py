"""Bars of many symbols read forward in time, chunk after chunk: from a `BarStore` each row
group is decoded once per run (only the columns asked for), whatever the chunks' size; any
other bar source is read window by window with `read_arrays`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from momentumbot.data.source import BarSource
from momentumbot.data.store import BarStore

COLUMNS = ("open", "close", "volume")


class _Pending:
    """One symbol's decoded bars not handed out yet, and the next row group to decode."""

    __slots__ = ("base", "cols", "group", "hi", "lo", "ts")

    def __init__(self, lo: np.ndarray, hi: np.ndarray, start_ns: int) -> None:
        self.lo = lo
        self.hi = hi
        self.group = int(np.searchsorted(hi, start_ns, side="left"))  # groups end ascending
        self.ts = np.empty(0, np.int64)
        self.cols = [np.empty(0) for _ in COLUMNS]
        self.base = 0  # rows of the arrays ts and cols are views of


class ForwardReader:
    """take(j, end_ns): symbol j's bars with ts < end_ns that no earlier take returned,
    from `start_ns` on, as (ts, open, close, volume float64). Calls for one symbol must ask
    for ascending ends. A symbol holds at most the rest of its last decoded row groups."""

    def __init__(self, source: BarSource, symbols: Sequence[str], start_ns: int) -> None:
        self._source = source
        self._symbols = list(symbols)
        self._start = int(start_ns)
        self._store = source if isinstance(source, BarStore) else None
        self._pending: list[_Pending | None] = [None] * len(self._symbols)
        self._from = [self._start] * len(self._symbols)
        self._closed = False

    def take(self, j: int, end_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._closed:
            raise RuntimeError("ForwardReader.take after close")
        if self._store is None:
            lo = self._from[j]
            self._from[j] = max(lo, int(end_ns))
            bars = self._source.read_arrays(self._symbols[j], lo, self._from[j])
            return _frozen(
                np.asarray(bars.ts, np.int64),
                np.asarray(bars.open, np.float64),
                np.asarray(bars.close, np.float64),
                np.asarray(bars.volume, np.float64),
            )
        p = self._pending[j]
        if p is None:
            p = self._pending[j] = _Pending(
                *self._store.row_group_spans(self._symbols[j]), self._start
            )
        stop = int(np.searchsorted(p.lo, end_ns, side="left"))  # groups starting before the end
        if stop > p.group:
            ts, cols = self._store.read_groups(self._symbols[j], p.group, stop, COLUMNS)
            first = int(np.searchsorted(ts, self._start, side="left"))
            if first:
                ts, cols = ts[first:], [c[first:] for c in cols]
            if p.ts.shape[0]:
                # joined by a copy, which also lets Arrow's decoded buffers go at once
                ts = np.concatenate([p.ts, ts])
                cols = [np.concatenate([a, b]) for a, b in zip(p.cols, cols, strict=True)]
            p.ts, p.cols, p.group, p.base = ts, cols, stop, ts.shape[0]
        cut = int(np.searchsorted(p.ts, end_ns, side="left"))
        out = _frozen(p.ts[:cut], p.cols[0][:cut], p.cols[1][:cut], p.cols[2][:cut])
        p.ts = p.ts[cut:]
        p.cols = [c[cut:] for c in p.cols]
        if 2 * p.ts.shape[0] < p.base:
            # most of the decoded rows are handed out: keep a copy of the rest alone, so a
            # wide run holds about half a row group per symbol (each row copied about once)
            p.ts = p.ts.copy()
            p.cols = [c.copy() for c in p.cols]
            p.base = p.ts.shape[0]
        return out

    def close(self) -> None:
        """Drop every symbol's decoded rows not handed out and give the pages Arrow decoded
        into back to the system: its allocator keeps a finished reader's pages (about one
        row group a symbol, 260 MB at 1,000 symbols) for reuse that may never come."""
        self._closed = True
        self._pending = [None] * len(self._symbols)
        pa.default_memory_pool().release_unused()


def _frozen(
    ts: np.ndarray, op: np.ndarray, cl: np.ndarray, vo: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-only views, whatever the source gave (Parquet's zero-copy arrays are read-only):
    compiled code that takes them then has one signature, compiled once."""
    out = (ts.view(), op.view(), cl.view(), vo.view())
    for a in out:
        a.flags.writeable = False
    return out

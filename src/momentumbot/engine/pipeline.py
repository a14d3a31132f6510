"""The engine phase's plumbing around the minute loop: the chunk buffers reused from chunk
to chunk, the kernel's tables and their growth, the allocation rows handed on on a thread
of their own, and the cyclic collector kept off the objects alive before the phase."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.engine import kernel as k
from momentumbot.engine.results import alloc_frame


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only (not musl)
    except OSError:
        return None


_MALLOC_TRIM = _find_malloc_trim()


def trim_heap() -> None:
    """Give the pages of freed memory back to the system (glibc: `malloc_trim`; a no-op
    elsewhere). glibc keeps arrays freed in its heaps (below its mmap threshold, which it
    raises up to 32 MB as large blocks are freed) and in each thread's heap: after the
    engine phase that was 300-400 MB of a 500-symbol run's RSS, held through collecting
    and writing."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class ChunkBuffers:
    """Arrays reused from chunk to chunk: one set of symbol-major columns to read into, and
    two sets (the chunk the loop runs and the next) of minute-major matrices and of the
    allocator minutes' quiet volumes. A wide run allocates them once, not per chunk: no
    fresh pages to fault in and zero for every chunk, and no freed ones for the allocator
    to hold."""

    def __init__(self, n_symbols: int, max_minutes: int, max_runs: int) -> None:
        cells = max(n_symbols * max_minutes, 1)
        runs = max(n_symbols * max_runs, 1)
        self.n = n_symbols
        self._cols = [np.empty(cells) for _ in range(3)]
        self._mats = [[np.empty(cells) for _ in range(3)] for _ in range(2)]
        self._qv = [(np.empty(runs), np.empty(runs, np.int64)) for _ in range(2)]

    def columns(self, n_min: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        o, c, v = (b[: self.n * n_min].reshape(self.n, n_min) for b in self._cols)
        return o, c, v

    def matrices(self, slot: int, n_min: int) -> list[np.ndarray]:
        return [b[: self.n * n_min].reshape(n_min, self.n) for b in self._mats[slot % 2]]

    def quiet_volumes(self, slot: int, n_runs: int) -> tuple[np.ndarray, np.ndarray]:
        """(allocator minutes x symbols) quiet volume and window size, zeroed."""
        at, count = (b[: self.n * n_runs].reshape(n_runs, self.n) for b in self._qv[slot % 2])
        at.fill(0.0)
        count.fill(0)
        return at, count


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """The objects alive before the engine phase (every imported module's) left out of the
    cyclic collector's passes while it runs: the phase makes few objects and no garbage
    cycles, and a full pass over a process with pandas, numba and pyarrow loaded is what
    the collector's time was spent on. A process that froze its objects itself (a forking
    server, say) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class Tables:
    """The kernel's output tables; grown (replaced) when a chunk runs out of room."""

    orders: k.OrderTable
    fills: k.FillTable
    allocs: k.AllocTable
    out: k.MinuteOut


class AllocationRows:
    """Allocation rows of each chunk, made into a table and handed to the sink (or kept) on
    a thread of their own, in order, at most one chunk behind the minute loop."""

    def __init__(self, sym_arr: np.ndarray, sink: Callable[[pd.DataFrame], None] | None) -> None:
        self._sym_arr = sym_arr
        self._sink = sink
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[None] | None = None
        self.parts: list[pd.DataFrame] = []

    def hand_on(self, allocs: k.AllocTable, st: k.State) -> None:
        """Take the rows written so far (copied: the table is reused from row 0)."""
        n = int(st.counters[k.C_ALLOCS])
        if not n:
            return
        rows = k.AllocTable(*(col[:n].copy() for col in allocs))
        st.counters[k.C_ALLOCS] = 0
        self._wait()
        self._pending = self._pool.submit(self._write, rows, n)

    def _write(self, rows: k.AllocTable, n: int) -> None:
        part = alloc_frame(rows, n, self._sym_arr)
        if self._sink is not None:
            self._sink(part)
        else:
            self.parts.append(part)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> AllocationRows:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            self._pool.shutdown(wait=True)


def grown(tables: Tables, name: str, used: int, n: int) -> Any:
    """The table `name` of `tables`, or a copy with twice the rows when fewer than n + 1
    are free (as kernel.grow). Copied array by array (a packed table's (fields x rows) array
    or a column), each old one freed as soon as it is copied: the copy needs one array's
    room more, not a whole second table."""
    table = getattr(tables, name)
    cap = k.capacity(table)
    if cap - used >= n + 1:
        return table
    capacity = max(2 * cap, used + 4 * (n + 1))
    kind = type(table)
    cols = list(table)
    setattr(tables, name, None)  # the table's last references are `cols`
    del table
    for i, col in enumerate(cols):
        bigger = np.zeros((*col.shape[:-1], capacity), dtype=col.dtype)
        bigger[..., : col.shape[-1]] = col
        cols[i] = bigger
        del col
    return kind(*cols)

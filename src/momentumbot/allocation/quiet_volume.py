"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes.

State per symbol (the engine's `State.qv_*`): the window's volumes in arrival order (a ring,
`count` of them, the oldest at `head` once full), whether the symbol's history has started,
and the same volumes sorted ascending (`sorted`), kept current at the end of every call here.

It depends on volumes alone, never on trading, so the engine computes it for a whole chunk
of minutes before walking them: one walk per symbol (symbols on both cores), recording the
figure only at allocator minutes (the sweeps: at every minute).

Within a walk the window is followed by its k-th smallest: one value t of the window, how
many volumes are below it and at most it, and the sum of those below. A minute's arriving
and leaving volumes change these by three comparisons (no search, no move of the window); at
an allocator minute t steps to the k-th smallest (about as many ranks as minutes passed, each
step a vectorised pass over the window) and the figure is that sum plus the copies of t
needed, divided by k. While the volumes are plain (whole numbers from 0 to 2**53 / window,
as a stock's minute volumes are) the walk follows (volume, slot) pairs packed in one int64
(`qv_pairs`: no ties, one pass a step); from a volume that is not, the values themselves
(`qv_rank`: a step also counts the new value's copies). The walk starts from the sorted copy
(its k-th smallest) and sorts the window back into it at the end (a merge sort, O(n log n) a
symbol and walk; the backtest's walks are thousands of minutes long). A walk of at most
SHORT_WALK minutes (paper and live trading step one minute at a time,
`quiet_volume_minute`) updates the sorted copy in place instead (`qv_sorted`: O(n) moves a
minute, about a microsecond).

Exactness: volumes are whole numbers stored as float64, whose sums (below 2**53) are exact
in any order, so the running sum equals the sorted sum of the smallest half to the bit.
While the window holds a volume that is not a whole number (a CSV import may have them), or
one so large that a window's sum could pass 2**53 (`qv_rank.inexact`),
the figure at an allocator minute is instead summed afresh from the volumes below t (in
ring order): within rounding of the exact mean (one sum of n/2 values: about 2e-14 relative at
390 minutes), never drifting from one minute to the next; once the window holds whole
numbers only again, exact again. A bar whose volume is not a finite number counts as 0,
as a minute without a bar does (the store refuses such bars).
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.allocation.qv_pairs import plain_window, walk_pairs
from momentumbot.allocation.qv_rank import (
    EXACT_SUMS,
    clean_volume,
    inexact,
    settle,
    start,
    start_from_ring,
    sum_below,
)
from momentumbot.allocation.qv_sorted import sort_values, sorted_insert, sorted_replace
from momentumbot.compiled import in_parts, jit


@jit(nogil=True)
def _walk_symbols(
    lo: int,
    hi: int,
    volume: np.ndarray,
    close: np.ndarray,
    alloc_row: np.ndarray,
    ring_all: np.ndarray,
    srt_all: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    started: np.ndarray,
    window: int,
    qv_out: np.ndarray,
    n_out: np.ndarray,
) -> None:
    """Symbols [lo, hi), each over every minute of the chunk (see the module's docstring)."""
    scratch = np.empty(window)
    box = np.empty(1)
    box_bits = box.view(np.int64)
    pk = np.empty(window, np.int64)
    short = volume.shape[1] <= SHORT_WALK
    for s in range(lo, hi):
        if short:
            _walk_sorted(s, volume[s], close[s], alloc_row, ring_all[s], srt_all[s], count,
                         head, started, window, qv_out, n_out)  # fmt: skip
        else:
            _walk_symbol(s, volume[s], close[s], alloc_row, ring_all[s], srt_all[s], count,
                         head, started, window, qv_out, n_out, scratch, box, box_bits, pk)  # fmt: skip


# the walk over symbols [lo, hi), for callers that share the symbols out themselves (the
# backtest's worker and minute-loop threads, engine.shared_work)
walk_symbols = _walk_symbols

SHORT_WALK = 16  # minutes: a walk this short updates the sorted copy itself


@jit(inline=True)
def _walk_sorted(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, count: np.ndarray, head: np.ndarray, started: np.ndarray, window: int,
    qv_out: np.ndarray, n_out: np.ndarray,
) -> None:  # fmt: skip
    """A few minutes (paper and live trading step one at a time): each moves the leaving
    volume's slot of the sorted copy to the arriving one's (O(n) moves, about a microsecond),
    which costs far less than sorting the window back at the walk's end; the figure
    is the sorted copy's floor(n/2) smallest, summed."""
    n = count[s]
    h = head[s]
    on = started[s]
    for m in range(volume.shape[0]):
        bar = not math.isnan(close[m])
        on = on or bar
        if on:
            x = clean_volume(volume[m]) if bar else 0.0
            if n < window:
                ring[n] = x
                sorted_insert(srt, n, x)
                n += 1
            else:
                old = ring[h]
                ring[h] = x
                h = h + 1 if h + 1 < window else 0
                sorted_replace(srt, n, old, x)
        r = alloc_row[m]
        if r >= 0:
            k = n // 2
            low = 0.0
            for i in range(k):
                low += srt[i]
            qv_out[r, s] = low / k if k > 0 else 0.0
            n_out[r, s] = n
    count[s] = n
    head[s] = h
    started[s] = on


@jit(inline=True)
def _walk_symbol(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, count: np.ndarray, head: np.ndarray, started: np.ndarray, window: int,
    qv_out: np.ndarray, n_out: np.ndarray, scratch: np.ndarray, box: np.ndarray,
    box_bits: np.ndarray, pk: np.ndarray,
) -> None:  # fmt: skip
    """The pair walk while the volumes are plain (`qv_pairs`: a store's always are), the
    value walk from the first that is not (or from the start, if the window holds one)."""
    n = count[s]
    h = head[s]
    on = started[s]
    m0 = 0
    if plain_window(ring, n, window):
        m0, n, h, on = walk_pairs(s, volume, close, alloc_row, ring, srt, n, h, on, window,
                                  qv_out, n_out, pk)  # fmt: skip
    if m0 < volume.shape[0]:
        n, h, on = _walk_values(s, volume, close, alloc_row, ring, srt, n, h, on, window,
                                qv_out, n_out, m0, box, box_bits)  # fmt: skip
    for j in range(n):
        srt[j] = ring[j]
    sort_values(srt, n, scratch)
    count[s] = n
    head[s] = h
    started[s] = on


@jit(inline=True)
def _walk_values(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, n: int, h: int, on: bool, window: int, qv_out: np.ndarray,
    n_out: np.ndarray, m0: int, box: np.ndarray, box_bits: np.ndarray,
) -> tuple[int, int, bool]:  # fmt: skip
    """Minutes m0 on by the window's k-th smallest value (`qv_rank`); srt[:n] is the window
    sorted when m0 is 0. Returns (n, h, on)."""
    bits = ring.view(np.int64)
    t, lt, le, low = start(srt, n) if m0 == 0 else start_from_ring(ring, n)
    big = EXACT_SUMS / window
    frac = 0  # volumes in the window whose sums may round (qv_rank.inexact)
    for j in range(n):
        frac += 1 if inexact(ring[j], big) else 0
    stale = frac > 0  # low may carry rounding: sum afresh at the next allocator minute
    for m in range(m0, volume.shape[0]):
        bar = not math.isnan(close[m])
        on = on or bar
        if on:
            x = clean_volume(volume[m]) if bar else 0.0
            if n < window:
                ring[n] = x
                n += 1
            else:
                old = ring[h]
                ring[h] = x
                h = h + 1 if h + 1 < window else 0
                lt -= 1 if old < t else 0
                le -= 1 if old <= t else 0
                low -= old if old < t else 0.0
                frac -= 1 if inexact(old, big) else 0
            lt += 1 if x < t else 0
            le += 1 if x <= t else 0
            low += x if x < t else 0.0
            frac += 1 if inexact(x, big) else 0
            stale = stale or frac > 0
        r = alloc_row[m]
        if r >= 0:
            k = n // 2
            if k > 0:
                t, lt, le, low = settle(ring, bits, box, box_bits, n, k, t, lt, le, low)
                if stale:
                    low = sum_below(ring, n, t)
                    stale = frac > 0
                qv_out[r, s] = (low + (k - lt) * t) / k
            else:
                qv_out[r, s] = 0.0
            n_out[r, s] = n
    return n, h, on


def quiet_volume_pass_columns(
    volume: np.ndarray,
    close: np.ndarray,
    alloc_row: np.ndarray,
    ring: np.ndarray,
    srt: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    started: np.ndarray,
    window: int,
    qv_out: np.ndarray,
    n_out: np.ndarray,
) -> None:
    """Walk a chunk of minutes symbol by symbol; volume and close are (symbols x minutes),
    NaN where a symbol has no bar.

    A symbol's window starts at its first bar (or earlier, if `started` says its data
    began before the chunk); a minute without a bar counts as volume 0. At each minute
    with alloc_row[m] >= 0, quiet_volume and the window size go to that row of qv_out/n_out.
    Symbols run on both cores (`in_parts`), each symbol's window in one thread.
    """
    in_parts(
        _walk_symbols, volume.shape[0], volume, close, alloc_row, ring, srt, count, head,
        started, window, qv_out, n_out,
    )  # fmt: skip


@jit()
def quiet_volume_minute(
    volume: np.ndarray,
    close: np.ndarray,
    is_alloc: bool,
    ring: np.ndarray,
    srt: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    started: np.ndarray,
    window: int,
    qv_out: np.ndarray,
    n_out: np.ndarray,
) -> None:
    """One minute (volume and close per symbol) for paper and live trading: the pass's own
    walk over a one-minute chunk, on this thread (a thread pool's start costs more than a
    minute's work). qv_out/n_out get the figures when is_alloc."""
    n_sym = volume.shape[0]
    row = np.full(1, 0 if is_alloc else -1, np.int64)
    _walk_symbols(
        0, n_sym, volume.reshape((n_sym, 1)), close.reshape((n_sym, 1)), row, ring, srt,
        count, head, started, window, qv_out.reshape((1, n_sym)), n_out.reshape((1, n_sym)),
    )  # fmt: skip


@jit()
def qv_push(
    ring: np.ndarray,
    srt: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    s: int,
    x: float,
    window: int,
) -> None:
    """Add one minute's volume to symbol s's window, dropping the oldest once full."""
    one = np.full((count.shape[0], 1), x)
    started = np.ones(count.shape[0], np.bool_)
    none = np.full(1, -1, np.int64)
    _walk_symbols(s, s + 1, one, one, none, ring, srt, count, head, started, window,
                  np.zeros((0, count.shape[0])), np.zeros((0, count.shape[0]), np.int64))  # fmt: skip


@jit(inline=True, fastmath=True)
def quiet_volume(sorted_all: np.ndarray, count: np.ndarray, s: int) -> float:
    """Mean of the floor(n/2) smallest volumes of the window (0 when that is none), read
    from the sorted copy."""
    k = count[s] // 2
    if k == 0:
        return 0.0
    total = 0.0
    srt = sorted_all[s]
    for i in range(k):
        total += srt[i]
    return total / k

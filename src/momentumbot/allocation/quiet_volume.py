"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes, kept as a ring of arrivals plus the same values sorted.

It depends on volumes alone, never on trading, so the engine computes it for a whole chunk
of minutes before walking them: one pass per symbol (its window stays in the CPU's nearest
cache; symbols run on all cores), recording the figure only at allocator minutes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import uint64

from momentumbot.compiled import in_parts, jit


@jit(inline=True)
def _bisect_pair(a: np.ndarray, x: float, y: float, n: int) -> tuple[int, int]:
    """Leftmost insertion points of x and y in sorted a[:n], branch-free and interleaved."""
    bx = 0
    by = 0
    length = n
    while length > 1:
        half = length >> 1
        bx += half * (a[bx + half - 1] < x)
        by += half * (a[by + half - 1] < y)
        length -= half
    return bx + (a[bx] < x), by + (a[by] < y)


BLOCK = 16  # the full window's search: block ends first, then one block


@jit(inline=True)
def _refresh_tops(srt: np.ndarray, top: np.ndarray, lo: int, hi: int, n: int) -> None:
    """top[b] = the last value of block b (of BLOCK sorted slots), for blocks lo..hi."""
    for b in range(lo, hi + 1):
        top[b] = srt[min(b * BLOCK + BLOCK - 1, n - 1)]


@jit(inline=True)
def _count_less_pair(
    srt: np.ndarray, top: np.ndarray, x: float, y: float, n: int
) -> tuple[int, int]:
    """Leftmost insertion points of x and y in sorted srt[:n] (n full, tops current): count
    the blocks ending below each, then the values below it in its block. Both steps are
    short vector loops, about twice as fast as a binary search's chain of dependent loads."""
    cx = 0
    cy = 0
    for b in range(top.shape[0]):
        t = top[b]
        cx += t < x
        cy += t < y
    bx = cx * BLOCK
    by = cy * BLOCK
    ix = 0
    iy = 0
    for i in range(BLOCK):
        ix += bx + i < n and srt[min(bx + i, n - 1)] < x
        iy += by + i < n and srt[min(by + i, n - 1)] < y
    return min(bx + ix, n), min(by + iy, n)


@jit(inline=True)
def _shift_left(a: np.ndarray, lo: int, hi: int) -> None:
    """a[lo:hi] = a[lo + 1:hi + 1]; unsigned indexes let the loop vectorise."""
    i = uint64(lo)
    end = uint64(hi)
    while i < end:
        a[i] = a[i + uint64(1)]
        i += uint64(1)


@jit(inline=True)
def _shift_right(a: np.ndarray, lo: int, hi: int) -> None:
    """a[lo + 1:hi + 1] = a[lo:hi], walking down."""
    i = uint64(hi)
    end = uint64(lo)
    while i > end:
        a[i] = a[i - uint64(1)]
        i -= uint64(1)


@jit(inline=True)
def qv_push(
    ring_all: np.ndarray,
    sorted_all: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    s: int,
    x: float,
    window: int,
) -> None:
    """Add one minute's volume to a symbol's window, dropping the oldest once full."""
    srt = sorted_all[s]
    ring = ring_all[s]
    n = count[s]
    if n < window:
        ring[n] = x
        p, _ = _bisect_pair(srt, x, x, n) if n > 0 else (0, 0)
        _shift_right(srt, p, n)
        srt[p] = x
        count[s] = n + 1
        return
    h = head[s]
    old = ring[h]
    ring[h] = x
    head[s] = h + 1 if h + 1 < window else 0
    if old == x:
        return
    j, p = _bisect_pair(srt, old, x, window)  # j: a slot holding `old`
    if x > old:
        p -= 1
        _shift_left(srt, j, p)
    else:
        _shift_right(srt, p, j)
    srt[p] = x


@jit(inline=True, fastmath=True)
def quiet_volume(sorted_all: np.ndarray, count: np.ndarray, s: int) -> float:
    """Mean of the floor(n/2) smallest volumes of the window (0 when that is none).
    Volumes are whole numbers, so the sum is exact in any order."""
    k = count[s] // 2
    if k == 0:
        return 0.0
    total = 0.0
    srt = sorted_all[s]
    for i in range(k):
        total += srt[i]
    return total / k


@jit(inline=True)
def _advance(
    volume: float,
    close: float,
    s: int,
    ring: np.ndarray,
    srt: np.ndarray,
    count: np.ndarray,
    head: np.ndarray,
    started: np.ndarray,
    window: int,
) -> None:
    """One symbol-minute: its window starts at its first bar; no bar counts as volume 0."""
    bar = not math.isnan(close)
    if bar:
        started[s] = True
    if started[s]:
        qv_push(ring, srt, count, head, s, volume if bar else 0.0, window)


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
    """Symbols [lo, hi), each over every minute of the chunk: the same window as `qv_push`
    (ring and sorted copy), with the sum of its floor(n/2) smallest kept as it changes (O(1)
    a minute) so an allocator minute costs no summing. Volumes are whole numbers, so the
    running sum is exact and equals `quiet_volume`'s sum to the bit (while below 2**53)."""
    for s in range(lo, hi):
        _walk_symbol(s, volume, close, alloc_row, ring_all, srt_all, count, head, started,
                     window, qv_out, n_out)  # fmt: skip


@jit(inline=True)
def _walk_symbol(
    s: int,
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
    srt = srt_all[s]
    ring = ring_all[s]
    n = count[s]
    h = head[s]
    on = started[s]
    k = n // 2
    low = 0.0
    for i in range(k):
        low += srt[i]
    top = np.empty((window + BLOCK - 1) // BLOCK)
    if n == window:
        _refresh_tops(srt, top, 0, top.shape[0] - 1, n)
    n_min = volume.shape[1]
    for m in range(n_min):
        c = close[s, m]
        bar = not math.isnan(c)
        if bar:
            on = True
        if on:
            x = volume[s, m] if bar else 0.0
            if n < window:
                ring[n] = x
                p, _ = _bisect_pair(srt, x, x, n) if n > 0 else (0, 0)
                k2 = (n + 1) // 2
                if k2 == k:
                    if p < k:
                        low += x - srt[k - 1]
                elif p <= k:
                    low += x
                else:
                    low += srt[k]
                _shift_right(srt, p, n)
                srt[p] = x
                n += 1
                k = k2
                if n == window:
                    _refresh_tops(srt, top, 0, top.shape[0] - 1, n)
            else:
                old = ring[h]
                ring[h] = x
                h = h + 1 if h + 1 < window else 0
                if old != x:
                    j, p = _count_less_pair(srt, top, old, x, window)  # j: a slot holding `old`
                    if x > old:
                        p -= 1
                        if j < k:
                            low += (x if p < k else srt[k]) - old
                        _shift_left(srt, j, p)
                        srt[p] = x
                        _refresh_tops(srt, top, j // BLOCK, p // BLOCK, window)
                    else:
                        if p < k:
                            low += x - (old if j < k else srt[k - 1])
                        _shift_right(srt, p, j)
                        srt[p] = x
                        _refresh_tops(srt, top, p // BLOCK, j // BLOCK, window)
        r = alloc_row[m]
        if r >= 0:
            qv_out[r, s] = low / k if k > 0 else 0.0
            n_out[r, s] = n
    count[s] = n
    head[s] = h
    started[s] = on


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
    Symbols run on every core (numba's thread count), each symbol's window in one thread.
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
    """One minute (volume and close per symbol) on one core, for paper and live trading:
    the pass's own per-symbol rule without its thread-pool start-up, which costs more than
    a minute's work. qv_out/n_out get the figures when is_alloc."""
    for s in range(volume.shape[0]):
        _advance(volume[s], close[s], s, ring, srt, count, head, started, window)
        if is_alloc:
            qv_out[s] = quiet_volume(srt, count, s)
            n_out[s] = count[s]

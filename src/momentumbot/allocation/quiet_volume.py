"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes.

State per symbol (the engine's `State.qv_*`): the window's volumes in arrival order (a ring,
`count` of them, the oldest at `head` once full), whether the symbol's history has started,
and the same volumes sorted ascending (`sorted`), kept current at the end of every call here.

It depends on volumes alone, never on trading, so the engine computes it for a whole chunk
of minutes before walking them: one walk per symbol (symbols on both cores), recording the
figure only at allocator minutes (the sweeps: at every minute).

Within a walk, the k = floor(n/2)-th smallest volume sits in a *band*: about 64 consecutive
values of the sorted window around it, held sorted (every value equal to the band's ends
included). Below the band only a count and a sum are kept; above it, nothing. A minute
compares the arriving and the leaving volume with the band's ends (O(1)); only a volume
inside the band is inserted or removed there (a binary search and a short move; about one
minute in six for each). When the k-th smallest leaves the band, the window is sorted and
the band re-centred on it (O(n log n); on market volumes once in thousands of minutes, on a
steady trend every ~32 minutes). The figure is the sum below plus the band's first values:
no summing of the window at an allocator minute. The sorted copy is the walk's start
(no sort) and is sorted afresh at its end (O(n log n) a symbol and walk: the backtest's
walks are thousands of minutes long, the live engine's one minute, about 10 us a symbol).
Cost: expected O(1) a minute on stationary volumes; at worst amortised O(64 + n log n / 32).

Exactness: volumes are whole numbers stored as float64, whose sums (below 2**53) are exact
in any order, so the running sum below the band plus the band's head equals the sorted sum
of the smallest half to the bit. While the window holds a volume that is not a whole number
(a CSV import may have them), the sum below the band is instead added afresh from the window
at each allocator minute: within rounding of the exact mean (one sum of n/2 values: relative error below 1e-13), never drifting
from one minute to the next; once the window is whole numbers again, exact again.
"""

from __future__ import annotations

import math

import numpy as np
from numba import uint64

from momentumbot.compiled import in_parts, jit


@jit(inline=True)
def _sort(a: np.ndarray, n: int, tmp: np.ndarray) -> None:
    """Sort a[:n] ascending in place (bottom-up merge sort through tmp; numba's own sorts
    cost seconds of compiling)."""
    src = a
    dst = tmp
    width = 1
    swapped = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            for o in range(lo, hi):
                if j < hi and (i >= mid or src[j] < src[i]):
                    dst[o] = src[j]
                    j += 1
                else:
                    dst[o] = src[i]
                    i += 1
        src, dst = dst, src
        swapped = not swapped
        width *= 2
    if swapped:
        for i in range(n):
            a[i] = tmp[i]


@jit(inline=True)
def _center(srt: np.ndarray, n: int, k: int, band: np.ndarray, half: int) -> tuple[int, int, float]:
    """Cut the sorted window srt[:n] into: the values below the band, the band (about 2 *
    `half` consecutive values around the k-th smallest, widened to take every value equal to
    its ends; copied to band[:size]) and the values above it. Returns (how many below, the
    band's size, the sum of the values below)."""
    if n == 0:
        return 0, 0, 0.0
    lo = min(max(k - 1 - half, 0), n - 1)
    hi = min(lo + 2 * half, n)
    while lo > 0 and srt[lo - 1] == srt[lo]:
        lo -= 1
    while hi < n and srt[hi] == srt[hi - 1]:
        hi += 1
    below = 0.0
    for i in range(lo):
        below += srt[i]
    for i in range(lo, hi):
        band[i - lo] = srt[i]
    return lo, hi - lo, below


@jit(inline=True)
def _count_le(a: np.ndarray, size: int, x: float) -> int:
    """How many of the sorted a[:size] are <= x: a branch-free binary search (scalar loads,
    which the band's just-moved values forward to at once; a vector count would wait)."""
    if size == 0:
        return 0
    base = 0
    length = size
    while length > 1:
        half = length >> 1
        base += half * (a[base + half - 1] <= x)
        length -= half
    return base + (a[base] <= x)


@jit(inline=True)
def _band_insert(band: np.ndarray, size: int, x: float) -> None:
    """Insert x into the sorted band[:size], after the values equal to it."""
    p = _count_le(band, size, x)
    i = uint64(size)
    end = uint64(p)
    while i > end:  # unsigned indexes let the move vectorise
        band[i] = band[i - uint64(1)]
        i -= uint64(1)
    band[p] = x


@jit(inline=True)
def _band_remove(band: np.ndarray, size: int, x: float) -> None:
    """Remove one x (the last of its equals) from the sorted band[:size]."""
    p = _count_le(band, size, x) - 1
    i = uint64(p)
    end = uint64(size - 1)
    while i < end:
        band[i] = band[i + uint64(1)]
        i += uint64(1)


@jit(inline=True)
def _head_sum(a: np.ndarray, j: int) -> float:
    """a[0] + ... + a[j - 1] in four interleaved sums (exact in any order for whole numbers)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    q = j - j % 4
    for i in range(0, q, 4):
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
    for i in range(q, j):
        s0 += a[i]
    return (s0 + s1) + (s2 + s3)


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
    band = np.empty(window + 1)
    tmp = np.empty(window)
    half = max(8, window // 12)
    for s in range(lo, hi):
        _walk_symbol(s, volume[s], close[s], alloc_row, ring_all[s], srt_all[s], count, head,
                     started, window, qv_out, n_out, band, tmp, half)  # fmt: skip


@jit(inline=True)
def _walk_symbol(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, count: np.ndarray, head: np.ndarray, started: np.ndarray, window: int,
    qv_out: np.ndarray, n_out: np.ndarray, band: np.ndarray, tmp: np.ndarray, half: int,
) -> None:  # fmt: skip
    n = count[s]
    h = head[s]
    on = started[s]
    k = n // 2
    n_lo, size, sum_lo = _center(srt, n, k, band, half)
    a = band[0] if size > 0 else np.inf  # the band's ends: below a, above b, band in [a, b]
    b = band[size - 1] if size > 0 else -np.inf
    frac = 0  # volumes in the window that are not whole numbers
    for j in range(n):
        frac += ring[j] != np.floor(ring[j])
    stale = frac > 0  # sum_lo may carry rounding: add afresh at allocator minutes
    for m in range(volume.shape[0]):
        bar = not math.isnan(close[m])
        on = on or bar
        if on:
            x = volume[m] if bar else 0.0
            frac += x != np.floor(x)
            if n < window:
                ring[n] = x
                n += 1
                k = n // 2
                old = x
                gone = False
            else:
                old = ring[h]
                ring[h] = x
                h = h + 1 if h + 1 < window else 0
                gone = True
                frac -= old != np.floor(old)
            if not gone or old != x:
                x_lo = x < a
                n_lo += x_lo
                sum_lo += x if x_lo else 0.0
                if a <= x <= b:
                    _band_insert(band, size, x)
                    size += 1
                if gone:
                    old_lo = old < a
                    n_lo -= old_lo
                    sum_lo -= old if old_lo else 0.0
                    if a <= old <= b:
                        _band_remove(band, size, old)
                        size -= 1
                if k > 0 and not (n_lo < k <= n_lo + size):  # the k-th left the band
                    _window_sorted(ring, n, h, srt, tmp)
                    n_lo, size, sum_lo = _center(srt, n, k, band, half)
                    a = band[0]
                    b = band[size - 1]
            stale = stale or frac > 0
        r = alloc_row[m]
        if r >= 0:
            if stale:  # not all whole numbers: the sum below the band afresh
                sum_lo = 0.0
                for j in range(n):
                    sum_lo += ring[j] if ring[j] < a else 0.0
                stale = frac > 0
            qv_out[r, s] = (sum_lo + _head_sum(band, k - n_lo)) / k if k > 0 else 0.0
            n_out[r, s] = n
    _window_sorted(ring, n, h, srt, tmp)
    count[s] = n
    head[s] = h
    started[s] = on


@jit(inline=True)
def _window_sorted(ring: np.ndarray, n: int, h: int, srt: np.ndarray, tmp: np.ndarray) -> None:
    """srt[:n] = the window's n volumes, sorted."""
    for j in range(n):
        srt[j] = ring[j]
    _sort(srt, n, tmp)


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

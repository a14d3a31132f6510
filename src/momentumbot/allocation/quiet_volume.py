"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes, kept as a ring of arrivals plus the same values sorted.

It depends on volumes alone, never on trading, so the engine computes it for a whole chunk
of minutes before walking them: one pass per symbol (its window stays in the CPU's nearest
cache; symbols run on all cores) that only writes each minute's volume into the ring and
computes the figure at allocator minutes alone, from the last one's k-th smallest volume
(a branch-free pass or two over the window). Paper and live trading push one minute at a
time into the sorted copy (`qv_push`).
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
    """Symbols [lo, hi), each over every minute of the chunk (see `_walk_symbol`)."""
    tmp = np.empty(window)
    for s in range(lo, hi):
        _walk_symbol(s, volume, close, alloc_row, ring_all, srt_all, count, head, started,
                     window, qv_out, n_out, tmp)  # fmt: skip


_NONE_ABOVE = 1.7976931348623157e308  # the largest finite float: "no volume above"


@jit(inline=True, fastmath=True)
def _split(ring: np.ndarray, n: int, t: float) -> tuple[int, float, int, float, float]:
    """Over ring[:n]: how many volumes are below t and their sum, how many equal t, the
    largest below t (-1 if none) and the smallest above t. One branch-free pass (volumes
    are whole numbers >= 0: sums are exact in any order)."""
    below = 0
    total = 0.0
    equal = 0
    under = -1.0
    over = _NONE_ABOVE
    for i in range(n):
        x = ring[i]
        lt = x < t
        below += lt
        equal += x == t
        total += x if lt else 0.0
        under = max(under, x if lt else -1.0)
        over = min(over, x if x > t else _NONE_ABOVE)
    return below, total, equal, under, over


@jit(inline=True)
def _sort_values(a: np.ndarray, n: int, out: np.ndarray, tmp: np.ndarray) -> None:
    """out[:n] = a[:n] sorted ascending: a bottom-up merge sort (a few lines that compile
    fast; numba's own sorts cost seconds of compiling)."""
    for i in range(n):
        out[i] = a[i]
    src = out
    dst = tmp
    in_tmp = False
    width = 1
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
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for i in range(n):
            out[i] = tmp[i]


@jit(inline=True)
def _lower_sum(
    ring: np.ndarray, n: int, k: int, t: float, srt: np.ndarray, tmp: np.ndarray
) -> tuple[float, float]:
    """Sum of the k smallest of ring[:n] (1 <= k <= n) and the k-th smallest, starting from
    a guess t of the latter (the last one found: a few ranks away at most, as only the
    minutes since replaced volumes). Each pass moves t to the next volume towards it; far
    from it, sort the window instead (srt, tmp: scratch of n slots)."""
    for _ in range(8):
        below, total, equal, under, over = _split(ring, n, t)
        if below < k <= below + equal:
            return total + (k - below) * t, t
        t = under if below >= k else over
    _sort_values(ring, n, srt, tmp)
    total = 0.0
    for i in range(k):
        total += srt[i]
    return total, srt[k - 1]


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
    tmp: np.ndarray,
) -> None:
    """One symbol over the chunk: each minute only writes its volume into the ring (the
    window's arrival order, as `qv_push` keeps it); the figure is computed only at allocator
    minutes, from the ring, by `_lower_sum` (amortised a pass or two of the window per
    allocator minute). The sorted copy is rebuilt at the end, for `qv_push` and the next
    chunk's first guess. Exact: the sum of whole numbers, to the bit what `quiet_volume`
    gives (while below 2**53)."""
    srt = srt_all[s]
    ring = ring_all[s]
    n = count[s]
    h = head[s]
    on = started[s]
    k = n // 2
    t = srt[k - 1] if k > 0 else 0.0  # sorted at the end of every pass
    for m in range(volume.shape[1]):
        c = close[s, m]
        bar = not math.isnan(c)
        if bar:
            on = True
        if on:
            x = volume[s, m] if bar else 0.0
            if n < window:
                ring[n] = x
                n += 1
            else:
                ring[h] = x
                h = h + 1 if h + 1 < window else 0
        r = alloc_row[m]
        if r >= 0:
            k = n // 2
            if k > 0:
                low, t = _lower_sum(ring, n, k, t, srt, tmp)  # srt: scratch until rebuilt
                qv_out[r, s] = low / k
            else:
                qv_out[r, s] = 0.0
            n_out[r, s] = n
    _sort_values(ring, n, srt, tmp)
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
    *,
    all_cores: bool = True,
) -> None:
    """Walk a chunk of minutes symbol by symbol; volume and close are (symbols x minutes),
    NaN where a symbol has no bar.

    A symbol's window starts at its first bar (or earlier, if `started` says its data
    began before the chunk); a minute without a bar counts as volume 0. At each minute
    with alloc_row[m] >= 0, quiet_volume and the window size go to that row of qv_out/n_out.
    Symbols run on every core (numba's thread count), each symbol's window in one thread;
    with all_cores=False all run in this thread (beside a minute loop on the other core).
    """
    args = (volume, close, alloc_row, ring, srt, count, head, started, window, qv_out, n_out)
    if all_cores:
        in_parts(_walk_symbols, volume.shape[0], *args)
    else:
        _walk_symbols(0, volume.shape[0], *args)


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

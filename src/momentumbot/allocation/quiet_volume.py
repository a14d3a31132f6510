"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes, kept as a ring of arrivals plus the same values sorted."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
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
        j = n
        while j > 0 and srt[j - 1] > x:
            srt[j] = srt[j - 1]
            j -= 1
        srt[j] = x
        count[s] = n + 1
        return
    h = head[s]
    old = ring[h]
    ring[h] = x
    head[s] = (h + 1) % window
    if old == x:
        return
    j = _bisect_left(srt, old, window)  # a slot holding `old`
    p = _bisect_left(srt, x, window)
    # plain copy loops (no data-dependent exit) so LLVM can vectorise them
    if x > old:
        p -= 1
        for i in range(j, p):
            srt[i] = srt[i + 1]
    else:
        for i in range(j, p, -1):
            srt[i] = srt[i - 1]
    srt[p] = x


@njit(cache=True, inline="always")
def _bisect_left(a: np.ndarray, x: float, n: int) -> int:
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always", fastmath=True)
def quiet_volume(sorted_all: np.ndarray, count: np.ndarray, s: int) -> float:
    """Mean of the floor(n/2) smallest volumes of the window (0 when that is none)."""
    k = count[s] // 2
    if k == 0:
        return 0.0
    total = 0.0
    srt = sorted_all[s]
    for i in range(k):
        total += srt[i]
    return total / k

"""A quiet-volume window's sorted copy updated in place, one volume at a time: what a walk
of a few minutes (paper and live trading's one-minute steps) does instead of following the
k-th smallest (`qv_pairs`, `qv_rank`), whose start and end cost more than a few minutes.
A binary search and a vectorised move of the values between the two slots."""

from __future__ import annotations

import numpy as np
from numba import uint64

from momentumbot.compiled import jit


@jit(inline=True)
def _count_less(a: np.ndarray, n: int, x: float) -> int:
    """How many of the sorted a[:n] are < x (branch-free binary search)."""
    if n == 0:
        return 0
    base = 0
    length = n
    while length > 1:
        half = length >> 1
        base += half * (a[base + half - 1] < x)
        length -= half
    return base + (a[base] < x)


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
def sorted_insert(a: np.ndarray, n: int, x: float) -> None:
    """Insert x into the sorted a[:n] (a has room for n + 1)."""
    p = _count_less(a, n, x)
    _shift_right(a, p, n)
    a[p] = x


@jit(inline=True)
def sorted_replace(a: np.ndarray, n: int, old: float, x: float) -> None:
    """Replace one value `old` of the sorted a[:n] by x, keeping it sorted."""
    if old == x:
        return
    j = _count_less(a, n, old)  # a slot holding old
    p = _count_less(a, n, x)
    if x > old:
        p -= 1
        _shift_left(a, j, p)
    else:
        _shift_right(a, p, j)
    a[p] = x


@jit()
def sort_values(a: np.ndarray, n: int, tmp: np.ndarray) -> None:
    """Sort a[:n] ascending in place: a bottom-up merge sort through tmp (numba's own sorts
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

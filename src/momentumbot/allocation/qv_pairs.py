"""The quiet-volume walk for a window of plain volumes (whole numbers, at least 0, below
`pair_limit`: 2**53 / window, far above any stock's minute volume), by (volume, ring slot)
pairs: each volume's pair
is one int64, `volume << shift | slot`, so no two are equal and pairs order like volumes
with ties broken by slot. The walk follows one pair p (`qv_rank`'s t, without ties): how many
pairs are below it (`lt`), at most it (`le`: lt or lt + 1) and the sum of the volumes below
(`low`). At an allocator minute p steps to the k-th smallest pair, one vectorised pass a
step (the value walk of `qv_rank` also counts each new value's copies: a second pass). The
k smallest volumes then sum to low + value(p), exactly (a window of plain volumes sums
below 2**53).

A volume that is not plain ends this walk at its minute (`walk_pairs` returns the minute);
the caller goes on with the value walk from there.
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.allocation.qv_rank import EXACT_SUMS, clean_volume
from momentumbot.compiled import jit, uncompiled

_NONE_BELOW = -0x7FFFFFFFFFFFFFFF - 1
_NONE_ABOVE = 0x7FFFFFFFFFFFFFFF


@jit(inline=True)
def pair_shift(window: int) -> int:
    """Bits for the slot: 2**shift > window, so slot 2**shift - 1 is never used (the pair
    `value << shift` minus 1 sits just below every pair of that value)."""
    shift = 1
    while (1 << shift) <= window:
        shift += 1
    return shift


@jit(inline=True)
def pair_limit(shift: int, window: int) -> float:
    """Volumes below this have pairs below 2**62, and a window of them sums below 2**53
    (exactly)."""
    return min(float(1 << (62 - shift)), EXACT_SUMS / window)


@jit()
def _below_loop(pk: np.ndarray, n: int, p: int) -> int:
    """The largest of pk[:n] below p; vectorises (an integer max)."""
    best = _NONE_BELOW
    for i in range(n):
        q = pk[i]
        best = max(best, q if q < p else _NONE_BELOW)
    return best


@jit()
def _above_loop(pk: np.ndarray, n: int, p: int) -> int:
    """The smallest of pk[:n] above p."""
    best = _NONE_ABOVE
    for i in range(n):
        q = pk[i]
        best = min(best, q if q > p else _NONE_ABOVE)
    return best


def _below_numpy(pk: np.ndarray, n: int, p: int) -> int:
    w = pk[:n]
    below = w[w < p]
    return int(below.max()) if below.size else _NONE_BELOW


def _above_numpy(pk: np.ndarray, n: int, p: int) -> int:
    w = pk[:n]
    above = w[w > p]
    return int(above.min()) if above.size else _NONE_ABOVE


if uncompiled():
    next_below, next_above = _below_numpy, _above_numpy
else:
    next_below, next_above = _below_loop, _above_loop


@jit(inline=True)
def settle_pairs(
    pk: np.ndarray, n: int, k: int, p: int, lt: int, le: int, low: float, shift: int
) -> tuple[int, int, int, float]:
    """Step p until it is the k-th smallest pair of pk[:n] (0 < k <= n)."""
    while lt >= k or le < k:
        if lt >= k:
            q = next_below(pk, n, p)
            le = lt
            lt -= 1
            low -= float(q >> shift)
        else:
            q = next_above(pk, n, p)
            low += (le - lt) * float(p >> shift)
            lt = le
            le += 1
        p = q
    return p, lt, le, low


@jit(inline=True)
def walk_pairs(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, n: int, h: int, on: bool, window: int, qv_out: np.ndarray,
    n_out: np.ndarray, pk: np.ndarray,
) -> tuple[int, int, int, bool]:  # fmt: skip
    """Minutes from the first on, while every volume is plain; the window's volumes are plain
    and srt[:n] is them sorted. Returns (the minute it stopped at: volume's length when
    done, n, h, on); the window's ring is current up to that minute."""
    shift = pair_shift(window)
    limit = pair_limit(shift, window)
    for j in range(n):
        pk[j] = (int(ring[j]) << shift) | j
    # start just below the pairs of the k-th smallest value: lt = le = how many are smaller
    p = -1
    lt = 0
    low = 0.0
    k = n // 2
    if k > 0:
        v = srt[k - 1]
        p = (int(v) << shift) - 1
        while srt[lt] < v:
            low += srt[lt]
            lt += 1
    le = lt
    for m in range(volume.shape[0]):
        bar = not math.isnan(close[m])
        on = on or bar
        if on:
            x = clean_volume(volume[m]) if bar else 0.0
            if not (x == np.floor(x) and 0.0 <= x < limit):
                return m, n, h, on  # the value walk goes on from this minute
            if n < window:
                slot = n
                n += 1
            else:
                slot = h
                h = h + 1 if h + 1 < window else 0
                q = pk[slot]
                lt -= 1 if q < p else 0
                le -= 1 if q <= p else 0
                low -= float(q >> shift) if q < p else 0.0
            ring[slot] = x
            q = (int(x) << shift) | slot
            pk[slot] = q
            lt += 1 if q < p else 0
            le += 1 if q <= p else 0
            low += x if q < p else 0.0
        r = alloc_row[m]
        if r >= 0:
            k = n // 2
            if k > 0:
                p, lt, le, low = settle_pairs(pk, n, k, p, lt, le, low, shift)
                qv_out[r, s] = (low + (k - lt) * float(p >> shift)) / k
            else:
                qv_out[r, s] = 0.0
            n_out[r, s] = n
    return volume.shape[0], n, h, on


@jit(inline=True)
def plain_window(ring: np.ndarray, n: int, window: int) -> bool:
    """Whether every volume of ring[:n] is plain (walk_pairs can take the window)."""
    limit = pair_limit(pair_shift(window), window)
    for j in range(n):
        x = ring[j]
        if not (x == np.floor(x) and 0.0 <= x < limit):
            return False
    return True

"""A quiet-volume window walked by its k-th smallest (`allocation.quiet_volume`'s walk over
chunks of minutes): the walk keeps one value `t` of the window and, for it, how many volumes
are below it (`lt`), how many are at most it (`le`) and the sum of those below (`low`). A
minute's arriving and leaving volumes change these three by comparisons alone (no search, no
move, no branch). The figure is needed only at allocator minutes: there `t` is the k-th
smallest exactly when lt < k <= le, and then the k smallest sum to low + (k - lt) * t. When
the minutes since the last figure moved the k-th smallest away from `t` (by about as many
ranks as minutes passed, at most), `t` steps to the next value below or above it, each step
one vectorised pass over the window for that value and one for its count.

Exactness: volumes are whole numbers stored as float64, whose sums (below 2**53) are exact in
any order, so the figure equals the sorted sum of the smallest half to the bit.

Running uncompiled (`compiled.uncompiled()`: a cold first run as plain Python), the passes
are numpy calls instead of loops (the same values: a max, a min and a count are exact).
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit, uncompiled

EXACT_SUMS = 2.0**53  # whole numbers sum exactly while every partial sum stays below this

LOWEST = -0x7FFFFFFFFFFFFFFF - 1  # int64's smallest: "no key"
HIGHEST = 0x7FFFFFFFFFFFFFFF
_SIGNLESS = 0x7FFFFFFFFFFFFFFF


# The passes compare order keys, not floats: a float64's bits as an int64, with the other
# bits flipped for negative values, order like the floats themselves (for +0.0 and above the
# key is the bits). Integer max and min loops vectorise; numba's float ones do not (measured:
# about 58 against 215-560 ns for a pass over 390 volumes). The walk stores +0.0 for -0.0,
# the one pair of equal floats with different keys.
@jit(inline=True)
def clean_volume(x: float) -> float:
    """A bar's volume as a walk stores it: -0.0 as 0.0 (see the keys below) and a volume
    that is not a finite number as 0, as a minute without a bar (the store refuses such
    bars; a broker's history might not)."""
    return x + 0.0 if math.isfinite(x) else 0.0


@jit(inline=True)
def inexact(x: float, big: float) -> bool:
    """Whether sums over a window holding x may round: x not a whole number, or so large
    (big = EXACT_SUMS / window) that a window's sum could pass 2**53."""
    return x != np.floor(x) or abs(x) >= big


@jit(inline=True)
def key_of(bits: int) -> int:
    """The order key of a float64's bits (and the bits of a key: the map is its own inverse)."""
    return bits ^ ((bits >> 63) & _SIGNLESS)


@jit()
def _max_below_loop(bits: np.ndarray, n: int, tk: int) -> int:
    """The largest key of bits[:n] below tk (LOWEST if none)."""
    best = LOWEST
    for i in range(n):
        b = bits[i]
        kb = b ^ ((b >> 63) & _SIGNLESS)
        best = max(best, kb if kb < tk else LOWEST)
    return best


@jit()
def _min_above_loop(bits: np.ndarray, n: int, tk: int) -> int:
    """The smallest key of bits[:n] above tk (HIGHEST if none)."""
    best = HIGHEST
    for i in range(n):
        b = bits[i]
        kb = b ^ ((b >> 63) & _SIGNLESS)
        best = min(best, kb if kb > tk else HIGHEST)
    return best


@jit()
def _count_equal_loop(a: np.ndarray, n: int, t: float) -> int:
    """How many of a[:n] equal t."""
    c = 0
    for i in range(n):
        c += 1 if a[i] == t else 0
    return c


@jit(inline=True)
def _sum_below_loop(a: np.ndarray, n: int, t: float) -> float:
    """The sum of a[:n] below t, in slot order."""
    total = 0.0
    for i in range(n):
        v = a[i]
        total += v if v < t else 0.0
    return total


def _keys(bits: np.ndarray, n: int) -> np.ndarray:
    b = bits[:n]
    return b ^ ((b >> 63) & _SIGNLESS)


def _max_below_numpy(bits: np.ndarray, n: int, tk: int) -> int:
    keys = _keys(bits, n)
    below = keys[keys < tk]
    return int(below.max()) if below.size else LOWEST


def _min_above_numpy(bits: np.ndarray, n: int, tk: int) -> int:
    keys = _keys(bits, n)
    above = keys[keys > tk]
    return int(above.min()) if above.size else HIGHEST


def _count_equal_numpy(a: np.ndarray, n: int, t: float) -> int:
    return int(np.count_nonzero(a[:n] == t))


def _sum_below_numpy(a: np.ndarray, n: int, t: float) -> float:
    total = 0.0  # in slot order, as the loop adds them
    for v in a[:n][a[:n] < t].tolist():
        total += v
    return total


if uncompiled():
    max_below, min_above = _max_below_numpy, _min_above_numpy
    count_equal, sum_below = _count_equal_numpy, _sum_below_numpy
else:
    max_below, min_above = _max_below_loop, _min_above_loop
    count_equal, sum_below = _count_equal_loop, _sum_below_loop


@jit(inline=True)
def settle(
    ring: np.ndarray, bits: np.ndarray, box: np.ndarray, box_bits: np.ndarray, n: int,
    k: int, t: float, lt: int, le: int, low: float,
) -> tuple[float, int, int, float]:  # fmt: skip
    """Step t until it is the k-th smallest of ring[:n] (0 < k <= n): lt < k <= le. `bits`
    is ring's int64 view; `box` a one-value scratch array, `box_bits` its int64 view.
    Returns the new (t, lt, le, low)."""
    while lt >= k or le < k:
        box[0] = t
        tk = key_of(box_bits[0])
        if lt >= k:  # the k-th smallest is below t: the next value down
            box_bits[0] = key_of(max_below(bits, n, tk))
            nt = box[0]
            c = count_equal(ring, n, nt)
            le = lt
            lt -= c
            low -= c * nt
        else:  # above t: the next value up; t's own copies join the sum
            box_bits[0] = key_of(min_above(bits, n, tk))
            nt = box[0]
            c = count_equal(ring, n, nt)
            low += (le - lt) * t
            lt = le
            le += c
        t = nt
    return t, lt, le, low


@jit(inline=True)
def start(srt: np.ndarray, n: int) -> tuple[float, int, int, float]:
    """(t, lt, le, low) for a window whose sorted copy is srt[:n]: t its k-th smallest
    (k = n // 2; the smallest when k is 0, 0 when the window is empty)."""
    if n == 0:
        return 0.0, 0, 0, 0.0
    k = n // 2
    t = srt[k - 1] if k > 0 else srt[0]
    lt = 0
    low = 0.0
    while srt[lt] < t:
        low += srt[lt]
        lt += 1
    le = lt
    while le < n and srt[le] == t:
        le += 1
    return t, lt, le, low


@jit(inline=True)
def start_from_ring(ring: np.ndarray, n: int) -> tuple[float, int, int, float]:
    """(t, lt, le, low) for the window ring[:n] with t its first slot's volume (settle then
    steps it to the k-th smallest): when the sorted copy is not current."""
    if n == 0:
        return 0.0, 0, 0, 0.0
    t = ring[0]
    lt = 0
    le = 0
    for j in range(n):
        lt += 1 if ring[j] < t else 0
        le += 1 if ring[j] <= t else 0
    return t, lt, le, sum_below(ring, n, t)

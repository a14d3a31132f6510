"""Two indexed heaps holding a quiet-volume window (`allocation.quiet_volume`'s walk over
chunks of minutes): the floor(n/2) smallest volumes in a max-heap (values stored negated, so
that both heaps are min-heaps and share their code) and the rest in a min-heap. Each entry
carries its ring slot; `pos[slot]` is the entry's place (+ `window` in the upper heap), so
the leaving volume's entry is found and replaced in place. Each heap keeps +inf one past its
last entry, so a sift picks the smaller child without a branch.

The minute's path (`replace` and the sifts) is inlined into the walk; `build`, `sort_values`
and `grow` (a walk's start and end, a window filling up) are compiled apart: inlined, they
cost about 4 s more compiling for no measurable speed (bench/README, session 5).
"""

from __future__ import annotations

import numpy as np

from momentumbot.compiled import jit


@jit(inline=True)
def _sift_up(hv: np.ndarray, hid: np.ndarray, pos: np.ndarray, i: int, off: int) -> None:
    """Move entry i of the min-heap (hv values, hid ring slots) up to its place;
    pos[slot] = its index + off."""
    v = hv[i]
    d = hid[i]
    while i > 0:
        p = (i - 1) >> 1
        if hv[p] <= v:
            break
        hv[i] = hv[p]
        hid[i] = hid[p]
        pos[hid[i]] = i + off
        i = p
    hv[i] = v
    hid[i] = d
    pos[d] = i + off


@jit(inline=True)
def _sift_down(
    hv: np.ndarray, hid: np.ndarray, pos: np.ndarray, i: int, size: int, off: int
) -> None:
    """Move entry i of the min-heap of `size` entries down to its place."""
    v = hv[i]
    d = hid[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        c += hv[c + 1] < hv[c]  # branch-free: hv[size] is +inf
        if hv[c] >= v:
            break
        hv[i] = hv[c]
        hid[i] = hid[c]
        pos[hid[i]] = i + off
        i = c
    hv[i] = v
    hid[i] = d
    pos[d] = i + off


@jit(inline=True)
def _sift(hv: np.ndarray, hid: np.ndarray, pos: np.ndarray, i: int, size: int, off: int) -> None:
    """Entry i changed value: move it up or down to its place."""
    if i > 0 and hv[(i - 1) >> 1] > hv[i]:
        _sift_up(hv, hid, pos, i, off)
    else:
        _sift_down(hv, hid, pos, i, size, off)


@jit(inline=True)
def _push(hv: np.ndarray, hid: np.ndarray, pos: np.ndarray, size: int, v: float, d: int,
          off: int) -> None:  # fmt: skip
    hv[size] = v
    hid[size] = d
    hv[size + 1] = np.inf
    _sift_up(hv, hid, pos, size, off)


@jit(inline=True)
def _pop(hv: np.ndarray, hid: np.ndarray, pos: np.ndarray, size: int, off: int) -> None:
    """Drop the top of a heap of `size` entries (its caller read it first)."""
    last = size - 1
    if last > 0:
        hv[0] = hv[last]
        hid[0] = hid[last]
        hv[last] = np.inf
        _sift_down(hv, hid, pos, 0, last, off)
    else:
        hv[0] = np.inf


@jit()
def build(
    ring: np.ndarray, srt: np.ndarray, n: int, k: int, lv: np.ndarray, li: np.ndarray,
    uv: np.ndarray, ui: np.ndarray, pos: np.ndarray, window: int,
) -> int:  # fmt: skip
    """Split the window (ring slots 0..n-1, sorted copy srt[:n]) into the lower heap (the k
    smallest, values negated so both heaps are min-heaps) and the upper one. Returns the
    number of volumes in the window that are not whole numbers."""
    t = srt[k - 1] if k > 0 else -np.inf  # the k-th smallest
    ties = 0  # how many values equal to t the lower half holds
    for i in range(k):
        ties += 1 if srt[i] == t else 0
    nl = 0
    nu = 0
    frac = 0
    for j in range(n):
        v = ring[j]
        frac += 0 if v == np.floor(v) else 1
        if v < t or (v == t and ties > 0):
            ties -= 1 if v == t else 0
            lv[nl] = -v
            li[nl] = j
            nl += 1
        else:
            uv[nu] = v
            ui[nu] = j
            nu += 1
    lv[nl] = np.inf  # each heap's sentinel, one past its last entry
    uv[nu] = np.inf
    for i in range(nl // 2 - 1, -1, -1):
        _sift_down(lv, li, pos, i, nl, 0)
    for i in range(nu // 2 - 1, -1, -1):
        _sift_down(uv, ui, pos, i, nu, window)
    for i in range(nl):
        pos[li[i]] = i
    for i in range(nu):
        pos[ui[i]] = i + window
    return frac


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


@jit()
def grow(x: float, slot: int, n: int, k: int, low: float, lv: np.ndarray, li: np.ndarray,
          uv: np.ndarray, ui: np.ndarray, pos: np.ndarray, window: int) -> float:  # fmt: skip
    """Add volume x (ring slot `slot`) to a window of n < window volumes whose lower heap
    holds its k = n // 2 smallest; returns the new sum of the (n + 1) // 2 smallest."""
    nu = n - k
    if k > 0 and x < -lv[0]:
        _push(lv, li, pos, k, -x, slot, 0)
        low += x
        nl = k + 1
    else:
        _push(uv, ui, pos, nu, x, slot, window)
        nl = k
        nu += 1
    want = (n + 1) // 2
    if nl > want:  # the largest of the lower half moves up
        top = -lv[0]
        d = li[0]
        _pop(lv, li, pos, nl, 0)
        _push(uv, ui, pos, nu, top, d, window)
        low -= top
    elif nl < want:  # the smallest of the upper half moves down
        top = uv[0]
        d = ui[0]
        _pop(uv, ui, pos, nu, window)
        _push(lv, li, pos, nl, -top, d, 0)
        low += top
    return low


@jit(inline=True)
def replace(x: float, old: float, slot: int, k: int, low: float, lv: np.ndarray,
             li: np.ndarray, uv: np.ndarray, ui: np.ndarray, pos: np.ndarray,
             window: int) -> float:  # fmt: skip
    """The full window's volume `old` at ring slot `slot` becomes x; the lower heap keeps
    its k entries. Returns the new sum of the k smallest."""
    nu = window - k
    e = pos[slot]
    if e < window:  # old is in the lower half
        if nu == 0 or x <= uv[0]:
            lv[e] = -x
            _sift(lv, li, pos, e, k, 0)
            return low + (x - old)
        m = uv[0]  # x belongs above: the upper half's smallest comes down in old's place
        md = ui[0]
        lv[e] = -m
        li[e] = md
        _sift(lv, li, pos, e, k, 0)
        uv[0] = x
        ui[0] = slot
        _sift_down(uv, ui, pos, 0, nu, window)
        return low + (m - old)
    i = e - window  # old is in the upper half
    if k == 0 or x >= -lv[0]:
        uv[i] = x
        _sift(uv, ui, pos, i, nu, window)
        return low
    big = -lv[0]  # x belongs below: the lower half's largest goes up in old's place
    bd = li[0]
    uv[i] = big
    ui[i] = bd
    _sift(uv, ui, pos, i, nu, window)
    lv[0] = -x
    li[0] = slot
    _sift_down(lv, li, pos, 0, k, 0)
    return low + (x - big)

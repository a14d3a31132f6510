"""quiet_volume (STRATEGY.md section 4.1): the mean of the quieter half of a symbol's last
n regular-session minute volumes.

State per symbol (the engine's `State.qv_*`): the window's volumes in arrival order (a ring,
`count` of them, the oldest at `head` once full), whether the symbol's history has started,
and the same volumes sorted ascending (`sorted`), kept current at the end of every call here.

It depends on volumes alone, never on trading, so the engine computes it for a whole chunk
of minutes before walking them: one walk per symbol (symbols on both cores), recording the
figure only at allocator minutes (the sweeps: at every minute).

Within a walk the window is split into two indexed heaps: the floor(n/2) smallest (a
max-heap, stored negated so that both are min-heaps) and the rest (a min-heap), each entry
with its ring slot, and `pos` giving each ring slot's place in its heap. A minute replaces
the leaving volume's entry with the arriving one in place and moves it to its heap's order;
when it belongs to the other half, the other heap's top crosses over (O(log n) a minute,
no allocation, no search). The sum of the smaller half is kept as entries come and go, so
an allocator minute costs one division. The heaps are built from the sorted copy at the
walk's start (a partition at the k-th smallest, O(n)) and sorted back into it at its end
(O(n log n) a symbol and walk): the backtest's walks are thousands of minutes long, paper
and live trading's one minute (`quiet_volume_minute`, the same walk).

Exactness: volumes are whole numbers stored as float64, whose sums (below 2**53) are exact
in any order, so the running sum equals the sorted sum of the smallest half to the bit.
While the window holds a volume that is not a whole number (a CSV import may have them),
the figure at an allocator minute is instead summed afresh from the smaller half (in heap
order): within rounding of the exact mean (one sum of n/2 values: about 2e-14 relative at
390 minutes), never drifting from one minute to the next; once the window holds whole
numbers only again, exact again.
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import in_parts, jit


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


@jit(inline=True)
def _build(
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


@jit(inline=True)
def _unload(srt: np.ndarray, n: int, k: int, lv: np.ndarray, li: np.ndarray,
            uv: np.ndarray, ui: np.ndarray, pos: np.ndarray, window: int) -> None:  # fmt: skip
    """Sort the heaps back into srt[:n] (emptying them)."""
    for i in range(k - 1, -1, -1):
        srt[i] = -lv[0]
        _pop(lv, li, pos, i + 1, 0)
    for i in range(n - k):
        srt[k + i] = uv[0]
        _pop(uv, ui, pos, n - k - i, window)


@jit(inline=True)
def _grow(x: float, slot: int, n: int, k: int, low: float, lv: np.ndarray, li: np.ndarray,
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
def _replace(x: float, old: float, slot: int, k: int, low: float, lv: np.ndarray,
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
    lv = np.empty(window + 2)
    uv = np.empty(window + 2)
    li = np.empty(window, np.int64)
    ui = np.empty(window, np.int64)
    pos = np.empty(window, np.int64)
    for s in range(lo, hi):
        _walk_symbol(s, volume[s], close[s], alloc_row, ring_all[s], srt_all[s], count, head,
                     started, window, qv_out, n_out, lv, li, uv, ui, pos)  # fmt: skip


@jit(inline=True)
def _walk_symbol(
    s: int, volume: np.ndarray, close: np.ndarray, alloc_row: np.ndarray, ring: np.ndarray,
    srt: np.ndarray, count: np.ndarray, head: np.ndarray, started: np.ndarray, window: int,
    qv_out: np.ndarray, n_out: np.ndarray, lv: np.ndarray, li: np.ndarray, uv: np.ndarray,
    ui: np.ndarray, pos: np.ndarray,
) -> None:  # fmt: skip
    n = count[s]
    h = head[s]
    on = started[s]
    k = n // 2
    low = 0.0
    for i in range(k):
        low += srt[i]
    frac = _build(ring, srt, n, k, lv, li, uv, ui, pos, window)
    stale = frac > 0  # low may carry rounding: sum afresh at the next allocator minute
    for m in range(volume.shape[0]):
        bar = not math.isnan(close[m])
        on = on or bar
        if on:
            x = volume[m] if bar else 0.0
            whole = x == np.floor(x)
            if n < window:
                ring[n] = x
                low = _grow(x, n, n, k, low, lv, li, uv, ui, pos, window)
                n += 1
                k = n // 2
            else:
                old = ring[h]
                ring[h] = x
                if old != x:
                    low = _replace(x, old, h, k, low, lv, li, uv, ui, pos, window)
                h = h + 1 if h + 1 < window else 0
                frac -= 0 if old == np.floor(old) else 1
            frac += 0 if whole else 1
            stale = stale or frac > 0
        r = alloc_row[m]
        if r >= 0:
            if stale:
                low = 0.0
                for i in range(k):
                    low -= lv[i]
                stale = frac > 0
            qv_out[r, s] = low / k if k > 0 else 0.0
            n_out[r, s] = n
    _unload(srt, n, k, lv, li, uv, ui, pos, window)
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

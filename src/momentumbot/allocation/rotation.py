"""Capital rotation (STRATEGY.md section 4): scores, eligibility, and from scores to budgets."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit

SCORER_SEED, SCORER_RETURN, SCORER_RETURN_X_LOG_DOLLAR_VOLUME = 0, 1, 2
SCORERS = {
    "seed": SCORER_SEED,
    "return": SCORER_RETURN,
    "return_x_log_dollar_volume": SCORER_RETURN_X_LOG_DOLLAR_VOLUME,
}


@jit(inline=True)
def raw_score(scorer: int, shadow_return: float, quiet_volume: float, price: float) -> float:
    """A symbol's score before the first-allocation rule and the shift (`allocation.scorer`)."""
    if scorer == SCORER_SEED:
        return shadow_return * quiet_volume
    if scorer == SCORER_RETURN:
        return shadow_return
    return shadow_return * math.log(1.0 + quiet_volume * price) if price > 0 else 0.0


@jit(inline=True)
def is_eligible(
    window_n: int,
    quiet_volume: float,
    price: float,
    min_history_bars: int,
    min_quiet_volume: float,
) -> bool:
    """Enough history in the quiet-volume window, enough quiet volume, and a price."""
    return window_n >= min_history_bars and quiet_volume > min_quiet_volume and price > 0.0


@jit(inline=True)
def _before(x: float, y: float, descending: bool) -> bool:
    """x strictly before y: NaN last, then by value."""
    if math.isnan(x):
        return False
    if math.isnan(y):
        return True
    return x > y if descending else x < y


@jit()
def stable_order(key: np.ndarray, descending: bool) -> np.ndarray:
    """Indexes of `key` by value (descending or ascending), ties in index order, NaN last:
    what np.argsort(-key or key, kind="mergesort") gives. A bottom-up merge sort of a few
    lines, which compiles in a fraction of the time numba's own sorts take."""
    n = key.shape[0]
    a = np.empty(n, np.int64)
    for i in range(n):
        a[i] = i
    b = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = lo + width if lo + width < n else n
            hi = lo + 2 * width if lo + 2 * width < n else n
            i = lo
            j = mid
            for o in range(lo, hi):
                right = j < hi and (
                    i >= mid or _before(float(key[a[j]]), float(key[a[i]]), descending)
                )
                if right:
                    b[o] = a[j]
                    j += 1
                else:
                    b[o] = a[i]
                    i += 1
        a, b = b, a
        width *= 2
    return a


@jit()
def allocate(
    scores: np.ndarray,
    eligible: np.ndarray,
    caps: np.ndarray,
    investable: float,
    top_k: int,
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Budgets from scores (STRATEGY.md section 4, steps 4-6).

    Returns (weights used, budgets). Ineligible symbols get weight NaN and budget 0.
    """
    n = scores.shape[0]
    w = np.full(n, np.nan)
    budget = np.zeros(n)
    lowest = np.inf
    count = 0
    for i in range(n):
        if eligible[i]:
            count += 1
            if scores[i] < lowest:
                lowest = scores[i]
    if count == 0:
        return w, budget
    shift = 0.0
    if lowest <= 0.0:
        shift = abs(lowest) + epsilon
    for i in range(n):
        if eligible[i]:
            w[i] = scores[i] + shift
    active = eligible.copy()
    if top_k > 0 and count > top_k:
        # keep the k best scores; ties go to the lower symbol index
        key = np.empty(n)
        for i in range(n):
            key[i] = w[i] if eligible[i] else -np.inf
        order = stable_order(key, True)
        for r in range(top_k, n):
            active[order[r]] = False
    if not investable > 0.0:
        return w, budget
    pool = investable
    while pool > 1e-9:
        total = 0.0
        for i in range(n):
            if active[i]:
                total += w[i]
        if not total > 0.0:
            break
        overflow = 0.0
        capped = False
        for i in range(n):
            if active[i]:
                want = budget[i] + pool * w[i] / total
                if want >= caps[i]:
                    overflow += want - caps[i]
                    budget[i] = caps[i]
                    active[i] = False
                    capped = True
                else:
                    budget[i] = want
        pool = overflow
        if not capped:
            break
    return w, budget

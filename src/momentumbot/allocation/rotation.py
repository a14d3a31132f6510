"""Capital rotation (STRATEGY.md section 4, steps 4-6): from scores to budgets."""

from __future__ import annotations

import numpy as np

from momentumbot.compiled import jit


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
        order = np.argsort(-np.where(eligible, w, -np.inf), kind="mergesort")
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

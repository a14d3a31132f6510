"""The allocator's run at a bar close (STRATEGY.md section 4): shadow returns, scores,
eligibility, the budgets, and one allocation row per symbol."""

from __future__ import annotations

import math

import numpy as np

from momentumbot.allocation.rotation import allocate, is_eligible, raw_score
from momentumbot.compiled import jit
from momentumbot.engine.kernel.state import (
    SB_BAND_HAS,
    SB_BAND_LONG,
    SF_BUDGET,
    SF_LAST_CLOSE,
    SF_SHADOW_ENTRY_OPEN,
    SF_SHADOW_REALISED,
    SI_POSITION,
    SI_SHADOW_SHARES,
    State,
)
from momentumbot.engine.kernel.tables import (
    C_ALLOCS,
    C_CASH,
    C_FIRST_ALLOC_DONE,
    AllocTable,
    KernelParams,
)
from momentumbot.strategy.shadow import shadow_return


@jit()
def _run_allocator(
    decided_ns: int,
    st: State,
    allocs: AllocTable,
    kp: KernelParams,
    qv: np.ndarray,
    window_n: np.ndarray,
) -> None:
    n = st.ints[SI_POSITION].shape[0]
    ret = np.zeros(n)
    raw = np.zeros(n)
    eligible = np.zeros(n, np.bool_)
    caps = np.zeros(n)
    any_eligible = False
    equity = st.counters[C_CASH] / 1e6
    last_close = st.floats[SF_LAST_CLOSE]
    position = st.ints[SI_POSITION]
    band_has = st.bools[SB_BAND_HAS]
    realised = st.floats[SF_SHADOW_REALISED]
    shares = st.ints[SI_SHADOW_SHARES]
    entry_open = st.floats[SF_SHADOW_ENTRY_OPEN]
    for s in range(n):
        price = last_close[s]
        if position[s] != 0:
            equity += position[s] * price
        ret[s] = shadow_return(
            band_has[s], realised[s], shares[s], entry_open[s], price, kp.shadow_notional
        )
        raw[s] = raw_score(kp.scorer, ret[s], qv[s], price)
        if is_eligible(window_n[s], qv[s], price, kp.min_history_bars, kp.min_quiet_volume):
            eligible[s] = True
            any_eligible = True
            caps[s] = qv[s] * price
    scores = raw.copy()
    if any_eligible and st.counters[C_FIRST_ALLOC_DONE] == 0:
        for s in range(n):
            scores[s] = 1.0
        st.counters[C_FIRST_ALLOC_DONE] = 1
    w, budget = allocate(
        scores, eligible, caps, equity - kp.cash_reserve, kp.top_k, kp.score_shift_epsilon
    )
    row = st.counters[C_ALLOCS]
    for s in range(n):
        st.floats[SF_BUDGET, s] = budget[s]
        price = st.floats[SF_LAST_CLOSE, s]
        target = 0
        if st.bools[SB_BAND_LONG, s] and budget[s] > 0.0 and price > 0.0:
            target = int(math.floor(budget[s] / price))
        allocs.time_ns[row] = decided_ns
        allocs.symbol[row] = s
        allocs.score[row] = w[s]
        allocs.raw_score[row] = raw[s]
        allocs.budget[row] = budget[s]
        allocs.target[row] = target
        allocs.quiet_volume[row] = qv[s]
        allocs.shadow_return[row] = ret[s]
        allocs.price[row] = price
        allocs.eligible[row] = eligible[s]
        row += 1
    st.counters[C_ALLOCS] = row

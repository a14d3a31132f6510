"""The momentum band (STRATEGY.md section 2): a pure function of one bar's close and state."""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def band_update(
    close: float, ref: float, level: float, long: bool, step: float, buffer: float
) -> tuple[int, float, bool]:
    """One bar of the momentum band. Returns (signal, new level, new long);
    signal +1 enter, -1 exit, 0 none (STRATEGY.md section 2)."""
    move = 100.0 * (close - ref) / ref
    signal = 0
    if move > level:
        if not long and move > level + buffer:
            signal = 1
            long = True
        if move >= level + step:
            level += step
    else:
        if long and move < level - buffer:
            signal = -1
            long = False
        if move <= level - step:
            level -= step
    return signal, level, long

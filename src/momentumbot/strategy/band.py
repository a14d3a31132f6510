"""The momentum band (STRATEGY.md section 2): a pure function of one bar's close and state."""

from __future__ import annotations

import numpy as np

from momentumbot.compiled import jit

# Thresholds are decimal numbers (a 1 % step, a 0.3 % buffer) and prices are cents, but
# both reach us as binary floats: 5.05 / 5.00 - 1 is 0.99999999999999645 %, and three
# 0.3 % rungs add up to 0.8999999999999999 %. A move that equals a threshold in decimal
# must count as equal, so comparisons allow this much slack (in percent). One cent on a
# 100,000 USD price is 1e-5 %, so no real move is ever this close to a threshold.
EPS = 1e-9


@jit()
def band_update(
    close: float, ref: float, level: float, long: bool, step: float, buffer: float
) -> tuple[int, float, bool]:
    """One bar of the momentum band. Returns (signal, new level, new long);
    signal +1 enter, -1 exit, 0 none.

    The level is always a whole number of rungs (kept as rungs x step, never summed), so
    it does not drift however often it moves.
    """
    signal, rungs, long = band_rungs(close, ref, round(level / step), long, step, buffer)
    return signal, rungs * step, long


@jit(inline=True)
def band_rungs(
    close: float, ref: float, rungs: int, long: bool, step: float, buffer: float
) -> tuple[int, int, bool]:
    """`band_update` on the level's whole number of rungs (level = rungs x step), for a
    caller that keeps the rungs: round(level / step) gives them back exactly (for any
    level made as rungs x step), so this saves a division and a rounding per bar.
    Returns (signal, new rungs, new long)."""
    move = 100.0 * (close - ref) / ref
    lvl = rungs * step
    # the rule without branches (the bitwise operators do not short-circuit): whether a bar
    # moves up or down is a coin toss, so branches on it are mispredicted half the time
    up = move > lvl + EPS
    enter = up & (not long) & (move > lvl + buffer + EPS)
    leave = (not up) & long & (move < lvl - buffer - EPS)
    rungs += int(up & (move >= lvl + step - EPS)) - int((not up) & (move <= lvl - step + EPS))
    signal = int(enter) - int(leave)
    long = (long | enter) & (not leave)
    return signal, rungs, long


@jit(inline=True)
def band_bar(
    started: bool,
    ref: float,
    level: float,
    long: bool,
    bar_open: float,
    close: float,
    step: float,
    buffer: float,
) -> tuple[int, float, float, bool]:
    """One bar of a symbol's band in this session: the symbol's first bar of the session
    (`started` false) starts the band at that bar's open, level 0, not long.
    Returns (signal, ref, level, long) for the band after this bar.

    Scalars in and out: the kernel calls this for every symbol at every bar, and arrays
    passed to an inlined function cost reference counting on every call."""
    if not started:
        ref = bar_open
        level = 0.0
        long = False
    signal, level, long = band_update(close, ref, level, long, step, buffer)
    return signal, ref, level, long


@jit(inline=True)
def band_bar_rungs(
    started: bool,
    ref: float,
    rungs: int,
    long: bool,
    bar_open: float,
    close: float,
    step: float,
    buffer: float,
) -> tuple[int, float, int, bool]:
    """`band_bar` on the level's rungs (`band_rungs`): the kernel keeps each symbol's rungs
    beside its level. Returns (signal, ref, rungs, long) for the band after this bar."""
    if not started:
        ref = bar_open
        rungs = 0
        long = False
    signal, rungs, long = band_rungs(close, ref, rungs, long, step, buffer)
    return signal, ref, rungs, long


@jit(inline=True)
def band_reset(s: int, has: np.ndarray, long: np.ndarray) -> None:
    """A new session (unless positions are held overnight): the band starts again at the
    symbol's first bar."""
    has[s] = False
    long[s] = False

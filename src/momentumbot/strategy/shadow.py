"""Shadow books (STRATEGY.md section 3): per symbol, a simulated position of `shadow_notional`
USD that follows every band signal of the session, so the allocator can score who is doing
well today. The kernel prices their fills with the cost model (execution.costs); the books
and their rules live here.

The per-bar rule takes and returns scalars; the rarer bookings take the arrays indexed by
symbol, never the kernel's State tuple (an inlined helper given the whole tuple pays
reference counting on every array in it, every call).
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit


@jit(inline=True)
def shadow_order(
    signal: int, no_buys: bool, close: float, shares: int, pending: int, shadow_notional: float
) -> int:
    """The shadow book's order after a band signal at this close (signed shares, filled at
    the next bar's open): an entry buys floor(shadow_notional / close) shares (not in the
    no-new-entries window), an exit sells what it holds; otherwise `pending` stays."""
    if signal == 1 and not no_buys and shares == 0:
        return int(math.floor(shadow_notional / close))
    if signal == -1:
        return -shares
    return pending


@jit(inline=True)
def shadow_open(
    s: int,
    qty: int,
    bar_open: float,
    cost: float,
    shares: np.ndarray,
    entry_open: np.ndarray,
    entry_cost: np.ndarray,
) -> None:
    """The shadow buy filled: `cost` is its value plus commission."""
    shares[s] = qty
    entry_open[s] = bar_open
    entry_cost[s] = cost


@jit(inline=True)
def shadow_close(
    s: int, proceeds: float, shares: np.ndarray, entry_cost: np.ndarray, realised: np.ndarray
) -> None:
    """The shadow sell filled: `proceeds` is its value less commission."""
    realised[s] += proceeds - entry_cost[s]
    shares[s] = 0
    entry_cost[s] = 0.0


@jit(inline=True)
def shadow_reset(
    s: int,
    shares: np.ndarray,
    pending: np.ndarray,
    realised: np.ndarray,
    entry_cost: np.ndarray,
) -> None:
    """A new session (unless positions are held overnight): an empty book."""
    shares[s] = 0
    pending[s] = 0
    realised[s] = 0.0
    entry_cost[s] = 0.0


@jit(inline=True)
def shadow_return(
    has_band: bool,
    realised: float,
    shares: int,
    entry_open: float,
    last_close: float,
    shadow_notional: float,
) -> float:
    """100 x (today's closed shadow round trips net of costs + open position's move from
    the open of its fill bar to the latest close) / shadow_notional, from one symbol's
    values (the kernel's allocator calls this for every symbol: scalars, no arrays)."""
    if not has_band:
        return 0.0
    pnl = realised
    if shares > 0:
        pnl += shares * (last_close - entry_open)
    return 100.0 * pnl / shadow_notional


@jit(inline=True)
def shadow_return_today(
    band_has: np.ndarray,
    realised: np.ndarray,
    shares: np.ndarray,
    entry_open: np.ndarray,
    last_close: np.ndarray,
    s: int,
    shadow_notional: float,
) -> float:
    """`shadow_return` of symbol s, read from the books' arrays."""
    return shadow_return(
        band_has[s], realised[s], shares[s], entry_open[s], last_close[s], shadow_notional
    )

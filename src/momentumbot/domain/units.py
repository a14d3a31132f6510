"""Units: time constants, the exchange's time zone, and the one USD -> micro-dollar rule.

Owns: every constant and conversion that more than one layer needs. Money is kept in integer
micro-dollars wherever it is added up (cash, commissions, fill values); a float USD amount
becomes micro-dollars by `usd_to_micro` (rounded half up; the compiled twin is
`execution.costs.to_micro`, kept equal by a test)."""

from __future__ import annotations

import math

NS = 1_000_000_000  # nanoseconds in a second (timestamps are UTC ns)
NS_PER_MINUTE = 60 * NS
NS_PER_DAY = 86_400 * NS
EXCHANGE_TZ = "America/New_York"  # US equities: sessions, bar labels shown, IB's server time
MICRO = 1_000_000  # micro-dollars in a dollar


def usd_to_micro(usd: float) -> int:
    """USD to integer micro-dollars, rounded half up (the rule everywhere)."""
    return int(math.floor(usd * MICRO + 0.5))

"""The risk limits compiled into the minute step (the kernel calls these at every bar close),
so a backtest, a sweep and paper or live trading apply the same limits to the same orders.

- `cut_new_buys`: the orders decided at one bar close, in id order, are checked against
  max_orders_per_minute, max_position_value and max_gross_exposure. Buys are cut to fit or
  refused; sells (exits, resizes down, the flatten) always pass: they reduce risk.
  `risk.limits.pre_trade` is the same rule in plain Python (tests hold the two equal).
- The settled-cash budget (`[portfolio] settlement = "T+1"`, a cash account): the kernel
  cuts new buys so that the day's buys never exceed the cash settled at the session's start
  (sale proceeds count from the next session); `SETTLEMENT_GAP_NS` tells sessions apart.
- `daily_loss_breached`: equity at this bar close is max_daily_loss or more below the
  equity at the session's first bar close. The kernel then flattens and decides nothing
  more that session (docs/strategy.md, "Risk limits").

Each cut order keeps what the strategy asked for (`requested`) and the code of the limit
that cut it (`risk`); LIMIT_NAMES names the codes in risk.csv and in the journal.
"""

from __future__ import annotations

import math

import numpy as np

from momentumbot.compiled import jit

# codes in the order table's `risk` column (0: no limit touched the order)
RISK_NONE = 0
RISK_POSITION_VALUE = 1
RISK_GROSS_EXPOSURE = 2
RISK_ORDERS_PER_MINUTE = 3
RISK_DAILY_LOSS = 4  # a flatten order sent by the daily-loss halt
RISK_SETTLED_CASH = 5  # [portfolio] settlement = "T+1": cut to the settled cash
LIMIT_NAMES = (
    "",
    "max_position_value",
    "max_gross_exposure",
    "max_orders_per_minute",
    "max_daily_loss",
    "settlement",
)

# settlement = "T+1": a bar (or fill) this long after the first of the settlement day belongs
# to a later session, whose open settles the day's sale proceeds (no session lasts 12 hours,
# and none opens within 12 hours of the previous one's first minute)
SETTLEMENT_GAP_NS = 12 * 3600 * 1_000_000_000

_WORKING = 0  # kernel.S_WORKING (the kernel imports this module, not the reverse)
_SKIPPED = 5  # kernel.S_SKIPPED


@jit()
def gross_exposure(
    first_new: int,
    position: np.ndarray,
    last_close: np.ndarray,
    working: np.ndarray,
    o_side: np.ndarray,
    o_quantity: np.ndarray,
    o_filled: np.ndarray,
) -> float:
    """USD of the long positions plus the unfilled part of working buys decided before
    order `first_new`, at the latest closes (a symbol without a close counts 0)."""
    exposure = 0.0
    for s in range(position.shape[0]):
        px = last_close[s]
        if math.isnan(px):
            px = 0.0
        if position[s] > 0:
            exposure += position[s] * px
        wid = working[s]
        if 0 <= wid < first_new and o_side[wid] > 0:
            exposure += (o_quantity[wid] - o_filled[wid]) * px
    return exposure


@jit()
def cut_new_buys(
    first_new: int,
    n_orders: int,
    max_position_value: float,
    max_gross_exposure: float,
    max_orders_per_minute: int,
    position: np.ndarray,
    last_close: np.ndarray,
    working: np.ndarray,
    o_symbol: np.ndarray,
    o_side: np.ndarray,
    o_quantity: np.ndarray,
    o_filled: np.ndarray,
    o_status: np.ndarray,
    o_risk: np.ndarray,
) -> int:
    """Cut or refuse the buys among orders [first_new, n_orders) that break a limit (0 = no
    limit). A refused order becomes skipped and stops working; a cut one keeps working with
    fewer shares. Returns how many orders a limit touched."""
    exposure = 0.0
    if max_gross_exposure > 0.0:
        exposure = gross_exposure(
            first_new, position, last_close, working, o_side, o_quantity, o_filled
        )
    buys = 0
    touched = 0
    for oid in range(first_new, n_orders):
        if o_side[oid] <= 0 or o_status[oid] != _WORKING:
            continue
        s = o_symbol[oid]
        asked = o_quantity[oid]
        qty = asked
        code = RISK_NONE
        if max_orders_per_minute > 0 and buys >= max_orders_per_minute:
            qty = 0
            code = RISK_ORDERS_PER_MINUTE
        else:
            p = last_close[s]
            if not (p > 0.0):
                continue
            if max_position_value > 0.0:
                room = int(math.floor(max_position_value / p)) - position[s]
                if room < qty:
                    qty = max(room, 0)
                    code = RISK_POSITION_VALUE
            if max_gross_exposure > 0.0 and qty > 0:
                room = int(math.floor(max(max_gross_exposure - exposure, 0.0) / p))
                if room < qty:
                    qty = room
                    code = RISK_GROSS_EXPOSURE
            if qty > 0:
                buys += 1
                exposure += qty * p
        if qty == asked:
            continue
        touched += 1
        o_risk[oid] = code
        if qty > 0:
            o_quantity[oid] = qty
        else:
            o_status[oid] = _SKIPPED
            if working[s] == oid:
                working[s] = -1
    return touched


@jit()
def daily_loss_breached(session_start_equity: float, equity: float, max_daily_loss: float) -> bool:
    """Equity has fallen max_daily_loss or more below the session's first equity."""
    return max_daily_loss > 0.0 and session_start_equity - equity >= max_daily_loss

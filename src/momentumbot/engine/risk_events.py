"""What the [risk] limits did in a run, as the rows of the run folder's risk.csv.

One row per order a limit cut (`cut`) or refused (`refused`), with what the strategy asked
for and what was kept, and one row per daily-loss halt (`halt`), with the loss that tripped
it. The kernel leaves the facts in the order table (`requested`, `risk`) and the minute
marks (`halted`); this module only reads them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine import kernel as k
from momentumbot.risk.checks import LIMIT_NAMES, RISK_DAILY_LOSS, RISK_NONE

RISK_COLUMNS = ("time", "event", "limit", "symbol", "order_id", "requested", "quantity", "loss")


def risk_events(
    symbols: list[str],
    session: np.ndarray,
    label_ns: np.ndarray,
    orders: k.OrderTable,
    n_orders: int,
    out: k.MinuteOut,
) -> pd.DataFrame:
    """risk.csv's rows in time order (a halt before the orders decided at the same close).

    `session` and `label_ns` are the plan's per-minute session index and bar labels, aligned
    with `out`."""
    halt_m = np.flatnonzero(out.halted[: label_ns.shape[0]])
    first = np.searchsorted(session, session[halt_m], side="left")
    start = out.cash[first] / 1e6 + out.positions_value[first]
    equity = out.cash[halt_m] / 1e6 + out.positions_value[halt_m]
    halts = pd.DataFrame(
        {
            "ns": label_ns[halt_m] + NS_PER_MINUTE,
            "oid": -1,
            "event": "halt",
            "limit": "max_daily_loss",
            "symbol": "",
            "order_id": pd.array([None] * len(halt_m), dtype="Int64"),
            "requested": pd.array([None] * len(halt_m), dtype="Int64"),
            "quantity": pd.array([None] * len(halt_m), dtype="Int64"),
            "loss": pd.array(start - equity, dtype="Float64"),
        }
    )
    risk = orders.risk[:n_orders]
    oids = np.flatnonzero((risk != RISK_NONE) & (risk != RISK_DAILY_LOSS))
    refused = orders.status[oids] == k.S_SKIPPED
    cuts = pd.DataFrame(
        {
            "ns": orders.decided_ns[oids],
            "oid": oids,
            "event": np.where(refused, "refused", "cut"),
            "limit": [LIMIT_NAMES[int(c)] for c in risk[oids]],
            "symbol": [symbols[int(s)] for s in orders.symbol[oids]],
            "order_id": pd.array(oids, dtype="Int64"),
            "requested": pd.array(orders.requested[oids], dtype="Int64"),
            "quantity": pd.array(np.where(refused, 0, orders.quantity[oids]), dtype="Int64"),
            "loss": pd.array([None] * len(oids), dtype="Float64"),
        }
    )
    both = pd.concat([halts, cuts], ignore_index=True) if len(halts) else cuts
    both = both.sort_values(["ns", "oid"], kind="stable", ignore_index=True)
    ns = both["ns"].to_numpy(np.int64)
    iso = np.char.add(np.datetime_as_string(ns.astype("datetime64[ns]"), unit="s"), "+00:00")
    both.insert(0, "time", iso.astype(str))
    return both.loc[:, list(RISK_COLUMNS)]

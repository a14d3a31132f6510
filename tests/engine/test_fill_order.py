"""The working orders fill at a bar's open sells first, then buys, each in order-id order,
however many there are (a handful are sorted in place, many by stable_order)."""

from __future__ import annotations

import numpy as np
import pytest

from momentumbot.config.schema import ExecutionConfig
from momentumbot.engine import kernel as k
from momentumbot.engine.kernel.fills import _fill_working
from momentumbot.execution.costs import cost_params


@pytest.mark.parametrize("n", [1, 5, 40, 90])
def test_sells_then_buys_each_in_order_id_order(n: int) -> None:
    rng = np.random.default_rng(n)
    st = k.new_state(n, 2, 1e7)
    orders, fills = k.new_orders(2 * n), k.new_fills(2 * n)
    sides = rng.choice([k.BUY, k.SELL], n)
    for s in rng.permutation(n):  # order ids in no symbol order
        if sides[s] == k.SELL:
            st.position[s] = 10
        k._new_order(st, orders, int(s), int(sides[s]), 10, k.R_ENTER, 0, k.S_WORKING)
    o = np.full((1, n), 10.0)
    v = np.full((1, n), 1e6)
    o[0, n // 2] = np.nan  # no bar: its order waits
    _fill_working(0, o, v, 0, st, orders, fills, cost_params(ExecutionConfig()))
    ids = [oid for oid in range(n) if orders.symbol[oid] != n // 2]
    sells = [oid for oid in ids if orders.side[oid] == k.SELL]
    buys = [oid for oid in ids if orders.side[oid] == k.BUY]
    got = fills.order_id[: int(st.counters[k.C_FILLS])].tolist()
    assert got == sells + buys
    assert orders.status[:n][orders.symbol[:n] == n // 2].tolist() == [k.S_WORKING]

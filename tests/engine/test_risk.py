"""The [risk] limits in the compiled minute step: each limit on its own (risk.checks), the
compiled cuts equal to the plain-Python rule `risk.limits.pre_trade` on random books, and the
daily-loss halt in the kernel (flatten at the first breach, nothing more that session, trading
again the next)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from momentumbot.engine import kernel as k
from momentumbot.risk import checks
from momentumbot.risk.limits import RiskLimits, pre_trade
from tests.engine.scenario import RUN, WARMUP, run, session_bars

BUY, SELL = 1, -1


class Book:
    """An order table after one minute's decisions: old working orders, then new ones."""

    def __init__(self, n_sym: int, price: list[float], position: list[int]) -> None:
        self.price = np.array(price, dtype=np.float64)
        self.position = np.array(position, dtype=np.int64)
        self.working = np.full(n_sym, -1, np.int64)
        self.o = k.new_orders(64)
        self.n = 0
        self.first_new = 0

    def add(self, s: int, side: int, qty: int, filled: int = 0, status: int = k.S_WORKING) -> int:
        oid = self.n
        o = self.o
        o.symbol[oid], o.side[oid], o.quantity[oid], o.filled[oid] = s, side, qty, filled
        o.status[oid] = status
        o.requested[oid] = qty
        if status == k.S_WORKING:
            self.working[s] = oid
        self.n += 1
        return oid

    def new_minute(self) -> None:
        self.first_new = self.n

    def cut(self, limits: RiskLimits) -> int:
        return checks.cut_new_buys(
            self.first_new, self.n, limits.max_position_value, limits.max_gross_exposure,
            limits.max_orders_per_minute, self.position, self.price, self.working, self.o.symbol,
            self.o.side, self.o.quantity, self.o.filled, self.o.status, self.o.risk,
        )  # fmt: skip

    def reference(self, limits: RiskLimits) -> dict[int, int]:
        """pre_trade's quantities for the new working orders (what the live gate applied)."""
        new = [i for i in range(self.first_new, self.n) if self.o.status[i] == k.S_WORKING]
        adj = pre_trade(
            new, symbol=self.o.symbol, side=self.o.side, quantity=self.o.quantity.copy(),
            filled=self.o.filled, working_ids=[int(w) for w in self.working if w >= 0],
            position=self.position, price=self.price, limits=limits,
        )  # fmt: skip
        return {a.oid: a.quantity for a in adj}


def test_the_status_codes_are_the_kernels() -> None:
    assert (checks._WORKING, checks._SKIPPED) == (k.S_WORKING, k.S_SKIPPED)


def test_position_value_cuts_a_buy_to_fit_and_refuses_one_with_no_room() -> None:
    b = Book(2, [50.0, 100.0], [100, 150])
    b.new_minute()
    cut = b.add(0, BUY, 300)  # 100 held at 50: room for 300 - 100 = 200 under 15,000
    refused = b.add(1, BUY, 10)  # 150 held at 100 is the limit already
    assert b.cut(RiskLimits(max_position_value=15_000.0)) == 2
    assert b.o.quantity[cut] == 200 and b.o.requested[cut] == 300
    assert b.o.risk[cut] == checks.RISK_POSITION_VALUE and b.o.status[cut] == k.S_WORKING
    assert b.o.status[refused] == k.S_SKIPPED and b.working[1] == -1
    assert b.o.risk[refused] == checks.RISK_POSITION_VALUE


def test_gross_exposure_counts_positions_and_older_working_buys() -> None:
    b = Book(3, [10.0, 10.0, 10.0], [100, 0, 0])
    b.add(1, BUY, 60, filled=10)  # 50 shares still to come: 500 USD
    b.new_minute()
    first = b.add(2, BUY, 100)  # 1,000 + 500 held or coming: room 1,000 of 2,500 -> 100 fits
    second = b.add(0, BUY, 100)  # nothing left
    b.cut(RiskLimits(max_gross_exposure=2_500.0))
    assert b.o.quantity[first] == 100 and b.o.risk[first] == checks.RISK_NONE
    assert b.o.status[second] == k.S_SKIPPED and b.o.risk[second] == checks.RISK_GROSS_EXPOSURE


def test_orders_per_minute_refuses_the_later_buys_and_sells_always_pass() -> None:
    b = Book(4, [10.0] * 4, [0, 0, 0, 500])
    b.new_minute()
    buys = [b.add(s, BUY, 10) for s in range(3)]
    sell = b.add(3, SELL, 500)
    b.cut(RiskLimits(max_orders_per_minute=2, max_position_value=1.0, max_gross_exposure=1.0))
    # with room for nothing, no buy passes, so the count never reaches 2; every buy is refused
    assert [int(b.o.status[i]) for i in buys] == [k.S_SKIPPED] * 3
    assert b.o.status[sell] == k.S_WORKING and b.o.quantity[sell] == 500
    b2 = Book(3, [10.0] * 3, [0, 0, 0])
    b2.new_minute()
    ids = [b2.add(s, BUY, 10) for s in range(3)]
    b2.cut(RiskLimits(max_orders_per_minute=2))
    assert [int(b2.o.status[i]) for i in ids] == [k.S_WORKING, k.S_WORKING, k.S_SKIPPED]
    assert b2.o.risk[ids[2]] == checks.RISK_ORDERS_PER_MINUTE


def test_no_limits_touch_nothing() -> None:
    b = Book(2, [10.0, 20.0], [0, 5])
    b.new_minute()
    b.add(0, BUY, 10**6)
    assert b.cut(RiskLimits()) == 0 and b.o.quantity[0] == 10**6


@pytest.mark.parametrize("seed", range(40))
def test_compiled_cuts_equal_the_python_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    price = rng.uniform(1, 200, n).round(2)
    price[rng.random(n) < 0.1] = np.nan
    b = Book(n, list(price), list(rng.integers(0, 300, n) * (rng.random(n) < 0.5)))
    for s in range(n):  # older working orders
        if rng.random() < 0.4:
            qty = int(rng.integers(1, 400))
            b.add(s, BUY if rng.random() < 0.7 else SELL, qty, filled=int(rng.integers(0, qty)))
    b.new_minute()
    for s in rng.permutation(n):  # at most one new order per symbol, as the kernel decides
        if rng.random() < 0.7:
            status = k.S_WORKING if rng.random() < 0.9 else k.S_SKIPPED  # the cost filter
            b.add(
                int(s),
                BUY if rng.random() < 0.8 else SELL,
                int(rng.integers(1, 500)),
                status=status,
            )
    limits = RiskLimits(
        max_position_value=float(rng.choice([0.0, 2_000.0, 10_000.0, 40_000.0])),
        max_gross_exposure=float(rng.choice([0.0, 5_000.0, 30_000.0, 100_000.0])),
        max_orders_per_minute=int(rng.choice([0, 1, 2, 5])),
    )
    want = b.reference(limits)
    asked = b.o.quantity[: b.n].copy()
    b.cut(limits)
    for oid in range(b.first_new, b.n):
        if oid in want and want[oid] == 0:
            assert b.o.status[oid] == k.S_SKIPPED and b.o.risk[oid] != 0, oid
        else:
            assert b.o.quantity[oid] == want.get(oid, asked[oid]), oid
            assert (b.o.risk[oid] != 0) == (oid in want), oid


def _day(session: str) -> pd.DataFrame:
    """AAA: an entry, a fall at minute 60 worth about 5,000 USD on its position."""
    return session_bars(session, closes={5: 101.5, 6: 102.5, 60: 97.0})


FRAMES = {
    "AAA": [session_bars(WARMUP), _day(RUN[0]), _day(RUN[1])],
    # BBB rises later in the first session: a fresh entry, unless that session has halted
    "BBB": [
        session_bars(WARMUP, price=50),
        session_bars(RUN[0], price=50, closes={150: 50.75, 151: 51.25, 152: 51.5}),
        session_bars(RUN[1], price=50),
    ],
}


def test_the_daily_loss_halt_flattens_and_stops_that_session_only() -> None:
    free = run(FRAMES, start=RUN[0], end=RUN[1])
    halted = run(FRAMES, start=RUN[0], end=RUN[1], risk={"max_daily_loss": 1_000.0})
    fall = "2024-03-05T15:31:00+00:00"  # the close of minute 60 (10:31 New York)
    f = free.orders.astype({"decided_at": str})
    assert "BBB" in set(f[f.decided_at > fall].symbol)
    o = halted.orders.astype({"decided_at": str})
    assert list(o[o.decided_at == fall].reason) == ["flatten"]
    first_day = o[o.decided_at < "2024-03-06"]
    assert first_day.decided_at.max() == fall, "nothing is decided after the halt"
    assert (o[o.decided_at > "2024-03-06"].side == "BUY").any(), "trades again"
    ev = halted.risk_events
    assert list(ev.event) == ["halt", "halt"] and str(ev.time.iloc[0]) == fall
    eq = halted.equity.set_index("time").equity
    start = eq[eq.index.astype(str) > "2024-03-05"].iloc[0]
    assert ev.loss.iloc[0] == pytest.approx(start - eq[fall]) and ev.loss.iloc[0] >= 1_000.0


def test_a_loss_short_of_the_limit_does_not_halt() -> None:
    res = run(FRAMES, start=RUN[0], end=RUN[1], risk={"max_daily_loss": 50_000.0})
    free = run(FRAMES, start=RUN[0], end=RUN[1])
    assert res.risk_events.empty
    pd.testing.assert_frame_equal(res.orders, free.orders)
    pd.testing.assert_frame_equal(res.fills, free.fills)

"""Reconciliation across IB days (pure): orders of an earlier day IB no longer reports are
explained by positions; fills adopted at IB's average cost; manual steps for the rest."""

from __future__ import annotations

import pytest

from momentumbot.execution.broker_protocol import BrokerSnapshot
from momentumbot.journal.journal import JournalFill
from momentumbot.journal.reconcile import EngineOrder, Reconciliation, reconcile
from momentumbot.journal.reconcile_days import ADOPTED_PREFIX, cost_basis

DAY = "2024-01-03"


def _order(oid: int, sym: str, side: int, qty: int, state: str = "working") -> EngineOrder:
    ref = f"enter:r1:{oid}"
    return EngineOrder(oid, sym, side, qty, 0, True, state, order_ref=ref, decided_ns=oid)


def _run(
    orders: list[EngineOrder],
    positions: dict[str, int],
    ib_positions: dict[str, int],
    *,
    avg: dict[str, float] | None = None,
    cash_gap: int = 0,
    basis: dict[str, float] | None = None,
) -> Reconciliation:
    snap = BrokerSnapshot(
        account="DU1", open_orders=[], completed_orders=[], executions=[],
        positions=ib_positions, cash_micro=1_000_000_000 + cash_gap, avg_costs=avg or {},
    )  # fmt: skip
    return reconcile(
        run_id="r1", client_id=7, symbols=["AAA", "BBB"], orders={o.oid: o for o in orders},
        known_exec_ids=set(), positions=positions, snapshot=snap,
        expected_cash_micro=1_000_000_000, earlier_day=DAY, fill_ns=500, basis=basis,
    )  # fmt: skip


def test_a_buy_that_opened_the_position_is_adopted_at_ibs_average_cost() -> None:
    # 100 shares bought at 10.00 with 1.00 commission: IB's average cost 10.01, cash -1,001
    r = _run([_order(0, "AAA", 1, 100)], {}, {"AAA": 100}, avg={"AAA": 10.01},
             cash_gap=-1_001_000_000)  # fmt: skip
    assert r.agrees, r.mismatches
    (ex,) = r.adopt
    assert ex.exec_id == ADOPTED_PREFIX + "enter:r1:0" and ex.quantity == 100
    assert ex.price == pytest.approx(10.01) and ex.commission_micro == 0
    assert ex.time_ns == 500 and r.ended == [] and r.resend == []


def test_a_buy_on_top_of_a_position_costs_what_the_average_says() -> None:
    # held 50 costing 505.00; 50 more bought: IB's average over 100 is 10.10 -> 505 / 50
    r = _run([_order(0, "AAA", 1, 50)], {"AAA": 50}, {"AAA": 100}, avg={"AAA": 10.10},
             cash_gap=-505_000_000, basis={"AAA": 505.0})  # fmt: skip
    assert r.agrees, r.mismatches
    assert r.adopt[0].price == pytest.approx(10.10) and r.adopt[0].commission_micro == 0


def test_a_sell_is_adopted_at_the_price_ibs_cash_implies() -> None:
    r = _run([_order(0, "AAA", -1, 100)], {"AAA": 100}, {}, cash_gap=1_234_560_000)
    assert r.agrees, r.mismatches
    assert r.adopt[0].price == pytest.approx(12.3456) and r.adopt[0].side == -1


def test_part_of_the_only_order_and_the_unfilled_ones_end() -> None:
    r = _run([_order(0, "AAA", 1, 100), _order(1, "BBB", 1, 10)], {}, {"AAA": 40},
             avg={"AAA": 10.0}, cash_gap=-400_000_000)  # fmt: skip
    assert r.agrees, r.mismatches
    assert [(e.order_ref, e.quantity) for e in r.adopt] == [("enter:r1:0", 40)]
    assert sorted(oid for oid, _ in r.ended) == [0, 1], "the rest of 0 and all of 1 ended"


def test_an_intent_the_position_shows_unfilled_is_sent_again() -> None:
    r = _run([_order(0, "AAA", -1, 100, state="intent")], {"AAA": 100}, {"AAA": 100})
    assert r.agrees and r.resend == [0] and not r.adopt


def test_what_positions_cannot_explain_stops_with_manual_steps() -> None:
    # 30 more shares than the orders of the day can make, and two ways to make 10
    r = _run([_order(0, "AAA", 1, 100)], {}, {"AAA": 130}, avg={"AAA": 10.0})
    assert not r.agrees
    (why,) = r.mismatches
    assert "AAA: IB holds 130 shares, the journal expects 0" in why
    assert "sell 130 AAA in TWS" in why and "run the same command again" in why
    both = [_order(0, "BBB", 1, 10), _order(1, "BBB", 1, 10)]
    r = _run(both, {}, {"BBB": 10}, avg={"BBB": 5.0})
    assert not r.agrees and "BBB" in r.mismatches[0], "ambiguous: which order filled?"


def test_the_same_day_is_unchanged() -> None:
    snap = BrokerSnapshot("DU1", [], [], [], {}, None)
    r = reconcile(run_id="r1", client_id=7, symbols=["AAA"], orders={0: _order(0, "AAA", 1, 5)},
                  known_exec_ids=set(), positions={}, snapshot=snap)  # fmt: skip
    assert r.ended == [(0, "IB no longer has it")]


def test_cost_basis_averages_as_ib() -> None:
    def f(side: str, qty: int, price: float, comm: int) -> JournalFill:
        return JournalFill("x", 0, "r", "AAA", side, qty, price, 0, comm, None, 0)

    basis = cost_basis([f("BUY", 100, 10.0, 1_000_000), f("SELL", 50, 11.0, 1_000_000)])
    assert basis["AAA"] == pytest.approx(500.5)

"""Pure parts of trading: risk limits, reconciliation rules, order refs, the journal file,
the console status table."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest

from momentumbot.execution.broker_protocol import BrokerSnapshot, ExecReport, OrderReport
from momentumbot.journal.journal import Journal, JournalError
from momentumbot.journal.reconcile import EngineOrder, make_ref, parse_ref, reconcile
from momentumbot.risk.limits import RiskLimits, daily_loss_breached, pre_trade

# ---------------------------------------------------------------- risk


class Book(TypedDict):
    symbol: np.ndarray
    side: np.ndarray
    quantity: np.ndarray
    filled: np.ndarray


def _book(quantity: list[int], side: list[int], symbol: list[int]) -> Book:
    return {
        "symbol": np.array(symbol, np.int32),
        "side": np.array(side, np.int8),
        "quantity": np.array(quantity, np.int64),
        "filled": np.zeros(len(quantity), np.int64),
    }


def test_position_value_cuts_a_buy_to_fit() -> None:
    book = _book([100, 50], [1, -1], [0, 1])
    adj = pre_trade(
        [0, 1], **book, working_ids=[0, 1], position=np.array([10, 80]), price=np.array([50.0, 10.0]),
        limits=RiskLimits(max_position_value=2_000.0),
    )  # fmt: skip
    assert [(a.oid, a.quantity) for a in adj] == [(0, 30)]  # 40 shares fit, 10 are held


def test_gross_exposure_counts_positions_and_working_buys() -> None:
    book = _book([10, 100, 100], [1, 1, 1], [0, 1, 2])
    adj = pre_trade(
        [1, 2], **book, working_ids=[0, 1, 2], position=np.array([100, 0, 0]),
        price=np.array([10.0, 10.0, 10.0]), limits=RiskLimits(max_gross_exposure=2_500.0),
    )  # fmt: skip
    # held 1,000 + working buy 100 = 1,100; order 1 gets 100 shares (1,000), order 2 the last 400
    assert [(a.oid, a.quantity) for a in adj] == [(2, 40)]


def test_orders_per_minute_blocked_symbols_and_halts() -> None:
    book = _book([5, 5, 5, 5], [1, 1, -1, 1], [0, 1, 2, 3])
    kw = dict(working_ids=[0, 1, 2, 3], position=np.zeros(4, np.int64), price=np.full(4, 10.0))
    adj = pre_trade([0, 1, 2, 3], **book, **kw, limits=RiskLimits(max_orders_per_minute=1))  # type: ignore[arg-type]
    assert [(a.oid, a.quantity) for a in adj] == [(1, 0), (3, 0)]  # the sell always passes
    blocked = np.array([True, False, False, False])
    adj = pre_trade([0, 1], **book, **kw, limits=RiskLimits(), blocked=blocked)  # type: ignore[arg-type]
    assert [(a.oid, a.quantity) for a in adj] == [(0, 0)]
    adj = pre_trade([0, 2], **book, **kw, limits=RiskLimits(), halted="daily loss")  # type: ignore[arg-type]
    assert [(a.oid, a.quantity) for a in adj] == [(0, 0), (2, 0)]


def test_daily_loss() -> None:
    lim = RiskLimits(max_daily_loss=100.0)
    assert not daily_loss_breached(10_000.0, 9_900.01, lim)
    assert daily_loss_breached(10_000.0, 9_900.0, lim)
    assert not daily_loss_breached(10_000.0, 0.0, RiskLimits())
    assert RiskLimits().missing_for_live() == [
        "max_position_value",
        "max_gross_exposure",
        "max_daily_loss",
    ]


# ---------------------------------------------------------------- reconciliation


def test_order_refs() -> None:
    ref = make_ref("flatten", "ab12", 42)
    assert ref == "flatten:ab12:42" and parse_ref(ref) == ("ab12", 42)
    assert parse_ref("manual order") is None and parse_ref("x:y:z") is None


def _ex(exec_id: str, ref: str, qty: int, sym: str = "AAA", side: int = 1) -> ExecReport:
    return ExecReport(exec_id, ref, 1, 1, 7, "DU1", sym, side, qty, 10.0, 0, 100)


def _open(ref: str, sym: str = "AAA", client_id: int = 7) -> OrderReport:
    return OrderReport(ref, 5, 9, client_id, sym, 1, 10, 0, "working", "Submitted")


def _snap(**kw: object) -> BrokerSnapshot:
    base: dict[str, object] = dict(
        account="DU1",
        open_orders=[],
        completed_orders=[],
        executions=[],
        positions={},
        cash_micro=None,
    )
    base.update(kw)
    return BrokerSnapshot(**base)  # type: ignore[arg-type]


def _orders(**working: bool) -> dict[int, EngineOrder]:
    return {
        int(k[1:]): EngineOrder(int(k[1:]), "AAA", 1, 10, 0, w, "sent") for k, w in working.items()
    }


def test_reconcile_adopts_missed_executions_and_confirms_working_orders() -> None:
    snap = _snap(
        executions=[_ex("e1", "enter:r1:0", 4), _ex("e0", "enter:r1:0", 6)],
        open_orders=[_open("enter:r1:1")],
        positions={"AAA": 10},
    )
    r = reconcile(run_id="r1", client_id=7, symbols=["AAA"], orders=_orders(o0=True, o1=True),
                  known_exec_ids={"e0"}, positions={"AAA": 6}, snapshot=snap)  # fmt: skip
    assert r.agrees, r.mismatches
    assert [e.exec_id for e in r.adopt] == ["e1"]
    assert list(r.confirmed) == [1]
    assert r.ended == [(0, "IB no longer has it")]  # not working at IB, not completed: gone


def test_reconcile_resends_only_what_ib_never_had_and_cancels_what_we_ended() -> None:
    snap = _snap(open_orders=[_open("enter:r1:1")])
    r = reconcile(run_id="r1", client_id=7, symbols=["AAA"], orders=_orders(o0=True, o1=False),
                  known_exec_ids=set(), positions={}, snapshot=snap)  # fmt: skip
    assert r.resend == [0] and r.cancel == ["enter:r1:1"]


def test_reconcile_stops_on_what_it_cannot_explain() -> None:
    cases = [
        _snap(positions={"AAA": 5}),  # shares the run never bought
        _snap(open_orders=[_open("manual", "AAA")]),  # someone else's order in our symbol
        _snap(open_orders=[_open("enter:r1:0", client_id=3)]),  # ours, but another client's
        _snap(executions=[_ex("e9", "enter:r1:77", 1)]),  # an execution for an unknown order
    ]
    for snap in cases:
        r = reconcile(run_id="r1", client_id=7, symbols=["AAA"], orders=_orders(o0=True),
                      known_exec_ids=set(), positions={}, snapshot=snap)  # fmt: skip
        assert not r.agrees, snap
    ok = reconcile(run_id="r1", client_id=7, symbols=["AAA"], orders={}, known_exec_ids=set(),
                   positions={}, snapshot=_snap(positions={"ZZZ": 5}))  # fmt: skip
    assert ok.agrees, "positions in other symbols are not ours to judge"


# ---------------------------------------------------------------- journal file


def test_journal_refuses_foreign_and_damaged_files(tmp_path: Path) -> None:
    p = tmp_path / "journal.sqlite"
    p.write_text("not sqlite at all, " * 20)
    with pytest.raises(JournalError, match="corrupt"):
        Journal.open(p, create=True)
    q = tmp_path / "other.sqlite"
    con = sqlite3.connect(q)
    con.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="schema 99"):
        Journal.open(q, create=True)


def test_journal_transactions_roll_back(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "j.sqlite", create=True)
    with pytest.raises(RuntimeError), j.transaction(durable=True):
        j.set("a", "1")
        raise RuntimeError("boom")
    assert j.get("a") is None
    with j.transaction():
        j.set("a", "2")
    assert j.get("a") == "2"
    j.close()


def test_journal_live_queries_equal_the_whole_tables(tmp_path: Path) -> None:
    """The dashboard's per-second queries (open orders, counts by state, the last fills) give
    what reading the whole tables gives, on a journal with many orders and fills."""
    from momentumbot.journal import journal as jr

    j = Journal.open(tmp_path / "j.sqlite", create=True)
    states = [jr.FILLED, jr.CANCELLED, jr.WORKING, jr.REJECTED, jr.SENT]
    with j.transaction():
        for oid in range(1, 201):
            j.add_order(
                oid, f"r{oid}", f"S{oid % 7}", "BUY", 10, "enter", oid * 60, states[oid % 5]
            )
        for i in range(300):
            # labels out of insertion order and ties broken by exec id
            j.add_fill(f"e{i:04d}", 1 + i % 200, f"r{1 + i % 200}", "S1", "BUY", 1, 10.0,
                       (i * 7919) % 1000 * 60, None, None, None)  # fmt: skip
    whole = j.orders()
    assert j.open_orders() == [o for o in whole.values() if o.state not in jr.DONE_STATES]
    assert len(j.open_orders()) == 80
    counts: dict[str, int] = {}
    for o in whole.values():
        counts[o.state] = counts.get(o.state, 0) + 1
    assert j.order_counts() == counts
    by_time = sorted(j.fills().values(), key=lambda f: (f.label_ns, f.exec_id))
    assert j.recent_fills(20) == by_time[-20:]
    assert j.recent_fills(1000) == by_time
    j.close()


# ---------------------------------------------------------------- console


def test_status_table_renders_without_a_run() -> None:
    from rich.console import Console

    from momentumbot.app.trade import TradeOptions, Trader, status_table
    from momentumbot.config.schema import AppConfig

    tr = Trader(AppConfig(symbols=["AAA"]), TradeOptions(out_dir=Path("unused")))
    console = Console(record=True, width=120)
    console.print(status_table(tr))
    assert "momentumbot paper" in console.export_text()

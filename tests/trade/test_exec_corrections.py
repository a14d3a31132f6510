"""Execution corrections (issue 12): IB repeats an execution with the execId's last part bumped;
the correction replaces the fill it corrects, never books a second one (the IB adapter names
what a correction replaces; the fill book and reconciliation act on it). The bot against the
gateway's `exec-correction` is in test_exec_time_zone.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from momentumbot.execution.broker_protocol import BrokerSnapshot, ExecReport
from momentumbot.execution.ib_reports import corrected_ids
from momentumbot.journal import journal as jr
from momentumbot.journal.reconcile import EngineOrder, reconcile
from tests.trade.fake_run import fake_run

IB_ID = "0000e0d5.6552f6c3.01.01"


def test_the_ib_adapter_names_what_a_correction_replaces() -> None:
    assert corrected_ids(IB_ID) == ()
    assert corrected_ids("0000e0d5.6552f6c3.01.02") == (IB_ID,)
    assert corrected_ids("0000e0d5.6552f6c3.01.03") == (IB_ID, "0000e0d5.6552f6c3.01.02")
    assert corrected_ids("fake.1044.43") == ()  # not IB's shape: never a correction


def _ex(exec_id: str, qty: int = 10) -> ExecReport:
    return ExecReport(exec_id, "enter:r1:0", 1, 1, 7, "DU1", "AAA", 1, qty, 10.0, 0, 100,
                      corrected_ids(exec_id))  # fmt: skip


def _reconcile(known: set[str], *executions: ExecReport) -> list[str]:
    snap = BrokerSnapshot("DU1", [], [], list(executions), {"AAA": 10}, None)
    r = reconcile(
        run_id="r1", client_id=7, symbols=["AAA"],
        orders={0: EngineOrder(0, "AAA", 1, 10, 10 if known else 0, False, "filled")},
        known_exec_ids=known, positions={"AAA": 10 if known else 0}, snapshot=snap,
    )  # fmt: skip
    assert r.agrees, r.mismatches
    return [e.exec_id for e in r.adopt]


def test_reconciliation_adopts_a_corrected_execution_once() -> None:
    fix = "0000e0d5.6552f6c3.01.02"
    assert _reconcile({IB_ID}, _ex(fix)) == []  # IB now lists the correction of a known one
    assert _reconcile({IB_ID}, _ex(IB_ID), _ex(fix)) == []
    assert _reconcile(set(), _ex(IB_ID), _ex(fix)) == [fix]  # both missed: the correction


def test_a_correction_replaces_the_fill_it_corrects(tmp_path: Path) -> None:
    async def body() -> None:
        async with fake_run(tmp_path / "out") as r:
            await r.until_orders_working()
            await r.step(2)
            session = r.trader.session
            assert session is not None
            book, e = session.fills, session.engine
            booked = r.fake.executions[0]
            assert booked.exec_id in book.fill_index
            n = e.fill_count()
            fix = dataclasses.replace(booked, exec_id="fix-1", replaces=(booked.exec_id,))
            session.events.on_execution(fix)  # as the broker's listener hands it over
            session.events.on_execution(fix)  # and once more: still one fill
            assert e.fill_count() == n
            fid = book.fill_index[booked.exec_id]
            assert booked.commission_micro is not None
            events = session.events
            events.on_commission("fix-1", 4_321_000)  # the correction's is the fill's
            assert int(e.fills.commission[fid]) == 4_321_000
            events.on_commission("fix-1", booked.commission_micro)
            await r.step(1)
            r.check_books()  # one fill per execution at the broker, cash and positions agree
            j = jr.Journal.open(r.trader.run_dir / jr.JOURNAL_NAME, create=False)
            try:
                names = [ev for _o, ev, _t in j.order_events()]
            finally:
                j.close()
            assert names.count("execution corrected") == 1

    asyncio.run(body())

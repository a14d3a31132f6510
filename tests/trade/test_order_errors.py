"""IB's order errors against the simulated gateway (real ib_async client, step mode): a warning
that carries the orderId keeps the order (no replacement), a refused modify keeps the original,
a value limit refuses big orders; each day ends flat and with journal = gateway record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.journal import replay as rp
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import check_books, replayed, synthetic_store, trading, write_config

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("order-errors")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def cfg(tmp: Path, extra: str = "") -> Any:
    return load_config(write_config(tmp / "cfg.toml", SYMBOLS, extra))


def journal_of(out: Path) -> Journal:
    return Journal.open(out / JOURNAL_NAME, create=False)


def gateway_flat(gw: Any, account: str = "DU0000001") -> dict[str, int]:
    return {s: p.qty for s, p in gw.broker.accounts[account].held().items() if p.qty}


def test_a_warning_with_the_order_id_keeps_the_order(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """order-warning=10349: ib_async marks each order cancelled; the bot keeps it, books its
    fill to it and sends no replacement."""
    ib_log.expect(10349)
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection|Canceled order")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            s.gw.apply_fault("order-warning=10349")
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            assert s.trader.stats.rejected == 0
            j = journal_of(s.out)
            try:
                events = j.order_events()
                orders = j.orders()
                ends = [i for i in j.inputs() if i.kind == rp.END]
            finally:
                j.close()
            warned = {oid for oid, ev, _ in events if ev == "ib_10349"}
            placed = [e for e in s.gw.record.events if e.get("what") == "placed"]
            assert placed and len(warned) == len(placed), "every order got the warning"
            assert not ends, f"the engine ended orders on a warning: {ends}"
            assert not [e for e in events if e[1] in ("rejected", "cancelled")]
            # every order is booked to itself: its fills carry its ref, each ref placed once
            by_ref = {o.order_ref: o for o in orders.values()}
            for f in s.gw.broker.fills:
                assert by_ref[f.order_ref].state == "filled" or by_ref[f.order_ref].filled > 0
            assert gateway_flat(s.gw) == {}, "the day ends flat"

    asyncio.run(body())


def test_a_refused_modify_keeps_the_original_and_the_day_ends_flat(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(201)
    ib_log.tolerate(202, 104, 10148)
    ib_log.allow("Peer closed connection|Canceled order")

    async def body() -> None:
        extra = (
            'order_type = "marketable_limit"\nlimit_offset_bps = 0.0\nlimit_timeout_seconds = 30\n'
        )
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            s.gw.apply_fault("reject-modify")
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            j = journal_of(s.out)
            try:
                events = j.order_events()
            finally:
                j.close()
            failed = [e for e in events if e[1] == "modify_failed"]
            assert failed, "some modifies were refused"
            assert not [e for e in events if e[1] == "rejected"], "a refused modify is no reject"
            assert s.trader.stats.rejected == 0
            assert gateway_flat(s.gw) == {}, "the day ends flat"

    asyncio.run(body())


def test_a_value_limit_splits_the_sells_and_the_day_ends_flat(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(451)
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection|Canceled order")

    async def body() -> None:
        extra = "sell_retry_seconds = 1.0\nsell_rejects_before_halt = 10\n"
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            held = s.trader.engine.positions()
            assert held, "the bot holds positions before the limit is set"
            e = s.trader.engine
            biggest = max(q * float(e.st.last_close[e.symbols.index(y)]) for y, q in held.items())
            s.gw.apply_fault(f"value-limit={biggest / 3:.0f}")
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            rejects = [e for e in s.gw.record.events if e.get("code") == 451]
            assert rejects, "some orders were over the limit"
            j = journal_of(s.out)
            try:
                reissues = [i for i in j.inputs() if i.kind == rp.REISSUE]
            finally:
                j.close()
            assert reissues, "a refused sell was sent again"
            assert gateway_flat(s.gw) == {}, "the day ends flat"
            # the re-issues are engine inputs: the journal replays into the same books
            view = replayed(s.trader.run_dir)
            check_books(view, s.gw)
            assert view.engine.order_count() == s.trader.engine.order_count()

    asyncio.run(body())

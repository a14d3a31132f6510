"""Idempotent sends against the simulated gateway (real ib_async client, step mode): a stop
asked for during a connectivity loss (1100) holds its flatten; the restore's reconciliation and
the held queue must not both send it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.testing.fake_broker import FakeBroker
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    check_books,
    placed_refs,
    synthetic_store,
    trading,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("sends")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def cfg(tmp: Path, extra: str = "") -> Any:
    return load_config(write_config(tmp / "cfg.toml", SYMBOLS, extra))


def test_stop_during_1100_flattens_once(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Stop asked for during 1100, connectivity restored within the stop wait: exactly one
    flatten order per symbol reaches the gateway, the account ends flat, never short."""
    ib_log.expect(1100, 1102)
    ib_log.tolerate(202)  # the stop cancels working orders
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            while not s.trader.engine.positions():
                await s.drv.run_to(_next_minute(s.gw.now_ns()))
            held = set(s.trader.engine.positions())
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            s.trader.kill.trip("test stop during 1100")
            s.trader.wake()
            router = s.trader.session.router
            await wait_for(lambda: len(router.held) > 0, 10, "the flatten held during 1100")
            s.gw.restore_connectivity()
            await wait_for(lambda: not router.held, 10, "the held orders released")
            out = await s.stop("test stop during 1100")
            assert out.stop_reason.startswith("test stop during 1100")
            flattens: dict[str, int] = {}
            for ev in s.gw.record.events:
                if ev.get("what") == "placed" and ev["order_ref"].startswith("flatten:"):
                    flattens[ev["symbol"]] = flattens.get(ev["symbol"], 0) + 1
            assert flattens == dict.fromkeys(held, 1), f"flatten orders placed: {flattens}"
            acct = s.gw.broker.accounts["DU0000001"]
            assert all(p.qty == 0 for p in acct.held().values()), "flat, never short"
            assert not s.trader.engine.positions()
            assert all(n == 1 for n in placed_refs(s.gw).values())
            check_books(s.trader, s.gw)

    asyncio.run(body())


def _next_minute(ns: int) -> str:
    import pandas as pd

    return (
        pd.Timestamp(ns + 60 * 1_000_000_000, tz="UTC")
        .tz_convert("America/New_York")
        .strftime("%H:%M")
    )


async def _until_orders_working(s: Any) -> None:
    await s.drv.settle(60)
    await s.drv.run_to("10:30")
    while not s.trader.engine.working_orders():
        await s.drv.run_to(_next_minute(s.gw.now_ns()))


def _working_at_gateway(s: Any) -> set[str]:
    return {o.order_ref for o in s.gw.broker.working() if o.account == "DU0000001"}


@pytest.mark.parametrize("keep", [False, True])
def test_fatal_exit_cancels_working_orders(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard, keep: bool
) -> None:
    """A task fails while orders are working (the emergency flatten does not fill within the
    stop wait): the exit cancels every order of the run at the gateway and lists what remains;
    with keep_orders_on_fatal they stay, listed."""
    from momentumbot.trading.supervisor import TaskFailed

    ib_log.tolerate(202)
    extra = (
        f"keep_orders_on_fatal = {'true' if keep else 'false'}\n[risk]\nstop_wait_seconds = 0.5\n"
    )

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path, extra)) as s:
            await _until_orders_working(s)
            assert _working_at_gateway(s)
            s.trader.sup.report("test", "fatal", RuntimeError("forced failure"))
            with pytest.raises(TaskFailed, match="forced failure"):
                await s.finish()
            working = _working_at_gateway(s)
            listed = "\n".join(s.trader.remaining)
            if keep:
                assert working, "keep_orders_on_fatal leaves the run's orders working"
                assert all(ref in listed for ref in working)
            else:
                assert not working, f"still working at the gateway: {working}"
                assert "still working" not in listed
            log = (tmp_path / "out" / "run.log").read_text(encoding="utf-8")
            assert "what remains at IB" in log or "no order of this run is working" in log
            for sym, p in s.gw.broker.accounts["DU0000001"].held().items():
                if p.qty:
                    assert f"position {p.qty} {sym}" in listed
            check_books(s.trader, s.gw)

    asyncio.run(body())


def test_reconcile_mismatch_exit_cancels_the_runs_orders(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Someone else's order appears in one of the run's symbols; the reconciliation after a
    reconnect cannot explain it and stops (exit code 6): the run's own working orders are
    cancelled at the gateway, the stranger's is left alone."""
    from ib_async import IB, Contract, LimitOrder, Stock

    from momentumbot.app.trade import TradingStopped

    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection|Connection reset|API connection failed")

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg(tmp_path)) as s:
            await _until_orders_working(s)
            ours = _working_at_gateway(s)
            assert ours
            other = IB()
            await other.connectAsync("127.0.0.1", s.gw.port, clientId=42, timeout=5)
            try:
                sym = SYMBOLS[0]
                (c,) = await other.qualifyContractsAsync(Stock(sym, "SMART", "USD"))
                assert isinstance(c, Contract)
                other.placeOrder(c, LimitOrder("BUY", 1, 1.0, orderRef="by hand"))
                await wait_for(lambda: "by hand" in _working_at_gateway(s), 5, "the order")
                s.trader.broker.drop()
                with pytest.raises(TradingStopped, match="not placed by this run"):
                    await s.finish()
            finally:
                other.disconnect()
            working = _working_at_gateway(s)
            assert working == {"by hand"}, f"working at the gateway: {working}"
            log = (tmp_path / "out" / "run.log").read_text(encoding="utf-8")
            assert "fatal exit: cancelling" in log

    asyncio.run(body())


class _Quiet:
    """A broker listener that ignores everything."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def test_cancel_working_orders_on_the_fake_broker() -> None:
    """The fatal exit's cancel in memory: this run's working orders are cancelled, another
    run's are not; what remains (positions in the run's symbols) is listed; keep leaves and
    lists them; no link, no cancel, and the user is told to look in TWS."""
    from momentumbot.config.schema import AppConfig
    from momentumbot.execution.costs import cost_params
    from momentumbot.trading.fatal_exit import cancel_working_orders
    from tests.trade.fake_run import DAY as FAKE_DAY
    from tests.trade.fake_run import market, ny

    async def body() -> None:
        fake = FakeBroker(
            _Quiet(), market(), now_ns=ny(FAKE_DAY, "10:00"),
            params=cost_params(AppConfig().execution),
        )  # fmt: skip
        await fake.connect(allow_fallback=False)
        sym = SYMBOLS[0]
        fake.place("enter:r1:0", sym, 1, 10, limit_price=0.01)
        fake.place("exit:r1:1", sym, -1, 5, limit_price=1e6)
        fake.place("enter:zz:0", sym, 1, 10, limit_price=0.01)
        fake.positions[sym] = 5
        kept = await cancel_working_orders(fake, "r1", [sym], keep=True, timeout=1)
        assert "keep_orders_on_fatal" in kept[0] and sum("still working" in x for x in kept) == 2
        lines = await cancel_working_orders(fake, "r1", [sym], keep=False, timeout=1)
        working = {o.ref for o in fake.orders.values() if o.status == "working"}
        assert working == {"enter:zz:0"}, "only the run's own orders are cancelled"
        assert lines == [
            f"position 5 {sym} remains at IB: the run's journal holds it (the same command "
            "resumes the run and manages it once the cause is fixed)"
        ]
        fake.drop()
        (why,) = await cancel_working_orders(fake, "r1", [sym], keep=False)
        assert "not connected to IB" in why and "TWS" in why

    asyncio.run(body())

"""Streams against the simulated gateway (real ib_async client, step mode, IB's caps on: 50
open historical requests, 100 market data lines): a 60-symbol universe trades a session (45
keepUpToDate streams, 15 symbols from 5-second real-time bars; a resync in the middle renews
them all) order for order as the backtest,
and one symbol's stream cancelled mid-session (162) is resubscribed alone: its exit fires and
the other symbols never pause. Each ends with journal = gateway record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.gateway.desks.connection import HistSub, RtSub
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import check_books, synthetic_store, trading, wait_for, write_config

DAY = "2024-01-03"
ORDER_COLS = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
              "filled_quantity"]  # fmt: skip


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def backtest(cfg: Path, store: Path, out: Path) -> pd.DataFrame:
    assert main(["backtest", "--config", str(cfg), "--store", str(store), "--start", DAY,
                 "--end", DAY, "--out", str(out), "--no-report"]) == 0  # fmt: skip
    return pd.read_csv(out / "orders.csv")


def subs(gw: Any, kind: type) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in gw.sessions:
        for sub in s.subs.values():
            if isinstance(sub, kind):
                assert hasattr(sub, "stock")
                out[sub.stock.symbol] = out.get(sub.stock.symbol, 0) + 1
    return out


# ---------------------------------------------------------------- 60 symbols

SIXTY = default_symbols(60)


@pytest.fixture(scope="module")
def sixty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sixty")
    synthetic_store(root / "store", SIXTY, "2024-01-02", 2, seed=11)
    return root / "store"


def test_sixty_symbols_trade_a_session_under_ibs_caps(
    sixty_store: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(1100, 1102)
    ib_log.tolerate(202)  # cancels of replaced orders
    ib_log.allow("Peer closed connection")
    cfg_path = write_config(tmp_path / "cfg.toml", SIXTY, 'beyond_max_streams = "realtime_bars"\n')
    expected = backtest(cfg_path, sixty_store, tmp_path / "bt")
    realtime = set(SIXTY[45:])
    assert set(expected.symbol) & realtime, "some orders are for symbols beyond the streams"

    async def body() -> None:
        cfg = load_config(cfg_path)
        async with trading(BarStore(sixty_store), DAY, tmp_path / "out", cfg) as s:
            await s.drv.settle(120)
            assert subs(s.gw, HistSub) == dict.fromkeys(SIXTY[:45], 1)
            assert subs(s.gw, RtSub) == dict.fromkeys(SIXTY[45:], 1)
            await s.drv.run_to("10:30")
            # a resync renews all 60 streams: each old one is cancelled before its new one
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 10, "1100")
            before = s.trader.stats.resubscribes
            s.gw.restore_connectivity()
            await wait_for(
                lambda: s.trader.conn.can_trade and s.trader.stats.resubscribes > before,
                30, "1102 and the resync",
            )  # fmt: skip
            assert subs(s.gw, HistSub) == dict.fromkeys(SIXTY[:45], 1)
            assert subs(s.gw, RtSub) == dict.fromkeys(SIXTY[45:], 1)
            await s.drv.run_to("16:01")
            out = await s.finish(60)
            assert out.sessions == 1
            status = s.gw.status()
            assert 45 <= status["peak_hist_requests"] <= 50
            assert status["peak_market_data_lines"] <= 100
            check_books(s.trader, s.gw)  # (a 322 or 101 would fail the IB log guard)

    run(body())
    traded = pd.read_csv(tmp_path / "out" / "orders.csv")
    pd.testing.assert_frame_equal(traded[ORDER_COLS], expected[ORDER_COLS])


# ---------------------------------------------------------------- cancel-stream

SIX = default_symbols(6)


@pytest.fixture(scope="module")
def six_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("six")
    synthetic_store(root / "store", SIX, "2024-01-02", 2, seed=5)
    return root / "store"


def _exit_to_watch(orders: pd.DataFrame) -> tuple[str, pd.Timestamp, pd.Timestamp]:
    """A symbol bought and later sold by the strategy (not the close's flatten), at least
    ten minutes apart: (symbol, buy decided, sell decided)."""
    orders = orders.assign(t=pd.to_datetime(orders.decided_at))
    for _, sell in orders[(orders.side == "SELL") & (orders.reason != "flatten")].iterrows():
        buys = orders[(orders.symbol == sell.symbol) & (orders.side == "BUY")
                      & (orders.t <= sell.t - pd.Timedelta(minutes=10))]  # fmt: skip
        if len(buys) and buys.t.iloc[-1].tz_convert("America/New_York").hour >= 10:
            return str(sell.symbol), buys.t.iloc[-1], sell.t
    raise AssertionError("no strategy exit ten minutes after its buy in the backtest")


def test_a_cancelled_stream_comes_back_alone_and_its_exit_fires(
    six_store: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.expect(162)  # the stream's "API historical data query cancelled"
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    cfg_path = write_config(tmp_path / "cfg.toml", SIX)
    expected = backtest(cfg_path, six_store, tmp_path / "bt")
    sym, bought, sold = _exit_to_watch(expected)
    cancel_at = (bought + pd.Timedelta(minutes=2)).tz_convert("America/New_York")

    async def body() -> None:
        cfg = load_config(cfg_path)
        async with trading(BarStore(six_store), DAY, tmp_path / "out", cfg) as s:
            await s.drv.settle(60)
            await s.drv.run_to(cancel_at.strftime("%H:%M"))
            assert s.trader.engine.positions().get(sym, 0) > 0, "bought before the cancel"
            old = {sub.req_id for sess in s.gw.sessions for sub in sess.subs.values()
                   if isinstance(sub, HistSub) and sub.stock.symbol == sym}  # fmt: skip
            others = {sub.req_id for sess in s.gw.sessions for sub in sess.subs.values()
                      if isinstance(sub, HistSub) and sub.stock.symbol != sym}  # fmt: skip
            s.gw.apply_fault(f"cancel-stream={sym}")
            assert sym not in subs(s.gw, HistSub), "the gateway ended the stream"
            # the bot resubscribes that one symbol, and only it
            await wait_for(lambda: subs(s.gw, HistSub).get(sym) == 1, 10, "the resubscribe")
            now = {sub.req_id for sess in s.gw.sessions for sub in sess.subs.values()
                   if isinstance(sub, HistSub)}  # fmt: skip
            assert others <= now and not (old & now), "the others' streams were left alone"
            assert s.trader.session.health.resubscribed == 1
            assert s.trader.stats.stale_streams == 0
            await s.drv.run_to("15:59")
            j = SIX.index(sym)
            last = pd.Timestamp(int(s.trader.minutes.last_label[j]), tz="UTC")
            assert last.tz_convert("America/New_York").strftime("%H:%M") >= "15:50", "bars resume"
            await s.drv.run_to("16:01")
            out = await s.finish(60)
            assert out.sessions == 1
            check_books(s.trader, s.gw)

    run(body())
    traded = pd.read_csv(tmp_path / "out" / "orders.csv")
    # its exit fired, at the backtest's minute: no minute of any symbol was lost or paused
    exits = traded[(traded.symbol == sym) & (traded.side == "SELL")
                   & (pd.to_datetime(traded.decided_at) == sold)]  # fmt: skip
    assert len(exits) == 1 and exits.status.iloc[0] == "filled"
    pd.testing.assert_frame_equal(traded[ORDER_COLS], expected[ORDER_COLS])


def test_a_real_time_bar_line_refused_101_is_missing_market_data_until_a_line_frees(
    six_store: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    """Three streams, three symbols on 5-second bars, but two market data lines: the third
    gets 101 and is treated as a symbol without market data (no buys), retried every
    stale_symbol_minutes; once a line is free its bars come and buys are allowed again."""
    from momentumbot.gateway.faults import Faults

    ib_log.expect(101)
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    extra = (
        'max_streams = 3\nbeyond_max_streams = "realtime_bars"\nallow_delayed_data = true\n'
        "stale_symbol_minutes = 2\n"
    )
    cfg = load_config(write_config(tmp_path / "cfg.toml", SIX, extra))
    gw_kwargs = {"faults": Faults(max_market_data_lines=2)}

    async def body() -> None:
        async with trading(
            BarStore(six_store), DAY, tmp_path / "out", cfg, gw_kwargs=gw_kwargs
        ) as s:
            await s.drv.settle(60)
            await wait_for(lambda: s.trader.blocked.any(), 10, "the 101")
            (refused,) = set(SIX[3:]) - set(subs(s.gw, RtSub))
            j = SIX.index(refused)
            assert s.trader.blocked.tolist() == [k == j for k in range(6)]
            await s.drv.run_to("10:30")
            health = s.trader.session.health
            assert health.resubscribed >= 5, "retried every 2 minutes"
            assert s.trader.blocked[j] and refused not in subs(s.gw, RtSub)
            freed_at = s.gw.now_ns()
            s.gw.apply_fault("max-market-data-lines=3")
            await s.drv.run_to("10:35")
            assert refused in subs(s.gw, RtSub), "subscribed once a line was free"
            assert not s.trader.blocked.any(), "its bars came: buys allowed again"
            await s.drv.run_to("11:00")
            await s.stop()
            check_books(s.trader, s.gw)
            buys = [e for e in s.gw.record.events if e.get("what") == "placed"
                    and e.get("symbol") == refused and e.get("action") == "BUY"
                    and e["time_ns"] < freed_at]  # fmt: skip
            assert not buys, "no buy while it had no market data"

    run(body())

"""A replayed session against the simulated gateway (real TCP, unmodified ib_async) with alerts
going to a local HTTP server standing in for an Apprise JSON target, and a second target that
hangs: the expected alerts arrive once each, none holds a secret, and the hanging target does
not hold the trading (every minute is stepped as the driver moves the clock)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from tests.gateway.conftest import IbLogGuard
from tests.notify.sink import AlertSink
from tests.trade.harness import check_books, synthetic_store, trading, wait_for, write_config

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"
SECRET_PATH = "hook/Tok3nInThePath998877"
DASH = "dash-token-5566778899"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("notify-trade")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def test_a_replayed_session_sends_its_alerts_once_each(
    store: BarStore,
    tmp_path: Path,
    ib_log: IbLogGuard,
    sink: AlertSink,
    sink2: AlertSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ib_log.expect(1100, 1102)
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    sink2.mode = "hang"  # never answers in time (each send times out after 3 s)
    monkeypatch.setenv("MOMENTUMBOT_NOTIFY_URLS", f"{sink.url(SECRET_PATH)} {sink2.url()}")
    monkeypatch.setenv("MOMENTUMBOT_DASHBOARD_TOKEN", DASH)
    extra = (
        "\n[risk]\nmax_daily_loss = 15.0\n"
        "\n[notify]\nlost_minutes = 0.002\nsend_timeout_seconds = 3.0\n"
    )
    cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, extra))

    async def body() -> None:
        async with trading(store, DAY, tmp_path / "out", cfg) as s:
            await s.drv.settle(60)
            await wait_for(lambda: len(sink.received) >= 1, 20, "the run-started alert")
            assert sink2.entered.is_set() or await _entered(sink2)  # the other target hangs
            await s.drv.run_to("10:00")
            s.gw.lose_connectivity()
            await wait_for(lambda: s.trader.conn.outage, 5, "1100")
            # an outage longer than lost_minutes (0.12 s): its alert comes while it lasts
            await wait_for(lambda: _has(sink, "connectivity lost"), 20, "the lost alert")
            s.gw.restore_connectivity()
            await wait_for(lambda: s.trader.conn.can_trade, 10, "1102 and resync")
            await s.drv.settle()
            await s.drv.run_to("16:01")  # every minute stepped while a target hangs
            out = await s.finish()
            assert out.sessions == 1 and "daily loss" in s.trader.halted
            check_books(s.trader, s.gw)
            assert not sink2.answered.is_set()  # it hung all session long

    asyncio.run(body())
    sink2.release.set()
    got = sink.received
    titles = [r.title.split(": ", 1)[1] for r in got]
    assert titles == [
        "run started",
        "halted: no new orders",  # the daily loss, at 09:37
        "connectivity lost",
        "connectivity restored",
        "session 2024-01-03",  # the session's summary, once its report is written
        "run stopped",
    ], titles
    run_id = (tmp_path / "out" / "config.toml").exists() and got[0].title.split(": ")[0]
    assert run_id and run_id.startswith("momentumbot paper ")
    assert "daily loss" in got[1].message
    assert got[2].message.startswith("connectivity lost (1100); for ")
    assert got[3].message.startswith("back after ") and got[3].message.endswith("(1102)")
    assert got[4].message.startswith("equity ") and "buy-and-hold" in got[4].message
    assert got[4].message.endswith("sessions/2024-01-03/report.html")
    assert got[5].message.startswith("stopped: ") and "1 sessions" in got[5].message
    for r in got:
        for secret in (SECRET_PATH, "Tok3nInThePath998877", DASH, str(sink2.port)):
            assert secret not in r.raw
    log = (tmp_path / "out" / "run.log").read_text()
    assert "Tok3nInThePath998877" not in log and DASH not in log
    assert "alerts to target 1 (JSON, json://), target 2 (JSON, json://)" in log
    assert "alerts: target 2 (JSON, json://) failed" in log  # the hanging one, logged once
    assert log.count("alerts: target 2 (JSON, json://) failed") == 1


def _has(s: AlertSink, title: str) -> bool:
    return any(r.title.endswith(f": {title}") for r in s.received)


async def _entered(s: AlertSink) -> bool:
    await wait_for(s.entered.is_set, 20, "the hanging target to be called")
    return True

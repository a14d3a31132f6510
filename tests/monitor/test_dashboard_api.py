"""The dashboard's HTTP API, served by the trading process on its own loop (a real uvicorn on a
free port, real HTTP with httpx), over the in-memory broker: the token guards everything, the
answers equal the bot's books, the controls act and are journaled, /metrics parses."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from momentumbot.config.schema import AppConfig
from momentumbot.domain.orders import Side
from momentumbot.journal import journal as jr
from tests.trade.fake_run import SYMBOLS, FakeRun, fake_run

TOKEN = "s3cret-dashboard-token-for-tests"


def _config(**dashboard: Any) -> AppConfig:
    b = {"reconnect_initial_seconds": 0.001, "server_time_poll_seconds": 5.0,
         "bar_grace_seconds": 0.0}  # fmt: skip
    return AppConfig.model_validate(
        {"symbols": SYMBOLS, "broker": b, "dashboard": {"enabled": True, "port": 0, **dashboard}}
    )


def _client(r: FakeRun, token: str | None = TOKEN) -> httpx.AsyncClient:
    assert r.trader.dashboard is not None, "the dashboard started"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=r.trader.dashboard.url, headers=headers, timeout=10)


def _meta(out: Path, key: str) -> str:
    return jr.read_progress(out / jr.JOURNAL_NAME).get(key, "")


def test_the_api_needs_the_token_and_equals_the_books(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOMENTUMBOT_DASHBOARD_TOKEN", TOKEN)
    out = tmp_path / "run"

    async def body() -> None:
        async with fake_run(out, _config()) as r:
            await r.run_to("10:30")
            e = r.trader.engine
            assert e is not None
            while not (e.positions() and e.working_orders()):
                await r.step()
            async with _client(r, None) as anon, _client(r, "wrong") as wrong:
                page = await anon.get("/")
                assert page.status_code == 200 and "momentumbot" in page.text
                for path in ("/api/status", "/api/positions", "/api/orders", "/api/fills",
                             "/metrics"):  # fmt: skip
                    assert (await anon.get(path)).status_code == 401, path
                    assert (await wrong.get(path)).status_code == 401, path
                res = await anon.post("/api/pause")
                assert res.status_code == 401
                assert not r.trader.state.paused and not _meta(out, "paused")
            async with _client(r) as c:
                positions = (await c.get("/api/positions")).json()
                assert {p["symbol"]: p["quantity"] for p in positions} == r.fake.positions
                working = {o["order_ref"] for o in (await c.get("/api/orders")).json()}
                assert working == {ref for ref, o in r.fake.orders.items() if o.status == "working"}
                status = (await c.get("/api/status")).json()
                assert status["equity"] == pytest.approx(e.equity())
                assert status["connection"] == "connected" and status["controls"] is True
                assert status["series"] and len(status["symbols"]) == len(SYMBOLS)
                for row, j in zip(status["symbols"], range(len(SYMBOLS)), strict=True):
                    side = "long" if e.st.band_long[j] else "flat"
                    assert row["band"].startswith(side) and " % of " in row["band"], row
                    assert row["shadow_shares"] == int(e.st.shadow_shares[j])
                fills = (await c.get("/api/fills")).json()
                assert fills and {"symbol", "quantity", "price"} <= set(fills[0])
                metrics = (await c.get("/metrics")).text
                families = {f.name: f for f in text_string_to_metric_families(metrics)}
                equity = families["momentumbot_equity_usd"].samples[0].value
                assert equity == pytest.approx(e.equity())
                assert "momentumbot_bar_lag_seconds" in families
                for text in (metrics, str(status), page.text):
                    assert TOKEN not in text
                # controls: pause is journaled and refuses buys; resume lifts it
                res = await c.post("/api/pause")
                assert res.status_code == 200 and "paused" in res.json()["message"]
                assert r.trader.state.paused and _meta(out, "paused")
                placed, decided = len(r.fake.placed), e.order_count()
                for _ in range(30):
                    await r.step()
                new = [r.fake.orders[ref] for ref in r.fake.placed[placed:]]
                assert all(o.side == Side.SELL for o in new), [o.side for o in new]
                buys = [oid for oid in range(decided, e.order_count())
                        if e.orders.side[oid] == Side.BUY]  # fmt: skip
                assert buys, "the strategy wanted to buy while paused"
                assert all(e.order_row(oid)[5] == "skipped" for oid in buys)
                res = await c.post("/api/resume")
                assert res.status_code == 200 and not r.trader.state.paused
                assert _meta(out, "paused") == ""
                res = await c.post("/api/rearm")
                assert "nothing to re-arm" in res.json()["message"]

    asyncio.run(body())
    j = jr.Journal.open(out / jr.JOURNAL_NAME, create=False, read_only=True)
    try:
        notes = [i.info for i in j.inputs() if i.kind == "note"]
    finally:
        j.close()
    assert {"control": "pause", "by": "the dashboard"} in notes
    assert {"control": "resume", "by": "the dashboard"} in notes


def test_without_a_token_the_dashboard_does_not_start_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("MOMENTUMBOT_DASHBOARD_TOKEN", raising=False)

    async def body() -> None:
        async with fake_run(tmp_path / "run", _config()) as r:
            assert r.trader.dashboard is None
            await r.step()

    asyncio.run(body())
    assert "dashboard not started: set MOMENTUMBOT_DASHBOARD_TOKEN" in caplog.text

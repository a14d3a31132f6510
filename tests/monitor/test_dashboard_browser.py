"""The running bot's dashboard in headless Chromium (Debian's, driven by playwright, network
blocked), during a session replayed by the simulated gateway over TCP with unmodified ib_async:
the page shows what the gateway's account holds, updates without a reload, and its controls
work: pause stops new entries (the gateway sees no buy after it) while sells still go, resume
lets them through again, and a control without the token is refused and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from tests.gateway.conftest import IbLogGuard
from tests.reporting.test_browser import CHROMIUM_FLAGS, _require_browser
from tests.trade.harness import check_books, synthetic_store, trading, write_config

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"
TOKEN = "browser-test-token-0123456789"
ACCOUNT = "DU0000001"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("dashboard")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


def _placed(gw: Any, since: int) -> list[dict[str, Any]]:
    return [
        ev for ev in gw.record.events[since:]
        if ev.get("event") == "order" and ev.get("what") == "placed"
    ]  # fmt: skip


async def _table(page: Any, tbody: str) -> list[list[str]]:
    return list(
        await page.evaluate(
            """(id) => Array.from(document.querySelectorAll(`#${id} tr`)).map(
                 (tr) => Array.from(tr.children).map((td) => td.textContent))""",
            tbody,
        )
    )


def test_the_dashboard_shows_the_account_and_its_controls_work(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, executable = _require_browser()
    from playwright.async_api import async_playwright

    monkeypatch.setenv("MOMENTUMBOT_DASHBOARD_TOKEN", TOKEN)
    ib_log.tolerate(202)
    cfg = load_config(
        write_config(tmp_path / "cfg.toml", SYMBOLS, "\n[dashboard]\nenabled = true\nport = 0\n")
    )
    out = tmp_path / "run"
    errors: list[str] = []
    blocked: list[str] = []

    async def body() -> None:
        async with trading(store, DAY, out, cfg) as s, async_playwright() as pw:
            gw, drv, tr = s.gw, s.drv, s.trader
            await drv.settle(120)
            await drv.run_to("10:30")
            e = tr.engine
            while not (e.positions() and e.working_orders()):
                await drv.run_to(_next(gw))
            assert tr.dashboard is not None
            url = tr.dashboard.url
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            async def route(r: Any) -> None:
                if r.request.url.startswith(url):
                    await r.continue_()
                else:
                    blocked.append(r.request.url)
                    await r.abort()

            await page.route("**/*", route)
            await page.goto(url)
            await page.fill("#token", TOKEN)
            await page.click("#signin")
            await page.wait_for_selector("#positions tr", timeout=30_000)

            # what the page shows is the gateway's account at this moment
            acct = gw.broker.accounts[ACCOUNT]
            held = {sym: p.qty for sym, p in acct.held().items() if p.qty}
            shown = {
                row[0]: int(row[1].replace(",", "")) for row in await _table(page, "positions")
            }
            assert shown == held
            working = {o.order_ref for o in gw.broker.working() if o.account == ACCOUNT}
            assert {row[0] for row in await _table(page, "orders")} == working
            equity = float((await page.text_content("#equity") or "").replace(",", ""))
            assert equity == pytest.approx(e.equity(), abs=0.01)

            # it updates without a reload
            before = await page.text_content("#progress")
            await drv.run_to(_next(gw, 3))
            await page.wait_for_function(
                "(old) => document.getElementById('progress').textContent !== old",
                arg=before, timeout=15_000,
            )  # fmt: skip

            # a control without the token: 401 and nothing changes
            async with httpx.AsyncClient(base_url=url) as anon:
                assert (await anon.post("/api/stop")).status_code == 401
                assert (await anon.post("/api/pause")).status_code == 401
            assert not tr.kill.tripped and not tr.state.paused

            # pause: no buy reaches the gateway, sells still do
            await page.click("#pause")
            await page.wait_for_function(
                "() => document.getElementById('control-msg').textContent.includes('paused')"
            )
            await page.wait_for_selector("#paused:not([hidden])")
            since = len(gw.record.events)
            await drv.run_to(_next(gw, 45))
            during = _placed(gw, since)
            assert not [ev for ev in during if ev["action"] == "BUY"], during
            assert [ev for ev in during if ev["action"] == "SELL"], "exits still go while paused"

            # resume: buys go out again
            await page.click("#resume")
            await page.wait_for_selector("#paused", state="hidden")
            since = len(gw.record.events)
            for _ in range(60):
                if any(ev["action"] == "BUY" for ev in _placed(gw, since)):
                    break
                await drv.run_to(_next(gw))
            assert any(ev["action"] == "BUY" for ev in _placed(gw, since)), "no buy after resume"
            assert TOKEN not in (await page.content())
            await browser.close()
            await s.stop()
            check_books(tr, gw)

    asyncio.run(body())
    assert errors == [], errors
    assert blocked == [], blocked


def _next(gw: Any, minutes: int = 1) -> str:
    import pandas as pd

    t = pd.Timestamp(gw.now_ns() + minutes * 60_000_000_000, tz="UTC")
    return t.tz_convert("America/New_York").strftime("%H:%M")

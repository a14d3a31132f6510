"""report.html in headless Chromium with the network blocked: no console errors, charts drawn.

Needs Debian's chromium and the playwright package (.ci/install-browser.sh installs both).
Under CI (env CI set) a missing browser FAILS the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reporting.conftest import Runs

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _require_browser() -> tuple[Any, str]:
    reason = None
    executable = os.environ.get("MOMENTUMBOT_CHROMIUM") or _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed"
    if executable is None:
        reason = "no chromium executable on PATH"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: .ci/install-browser.sh should have installed it")
        pytest.skip(f"{reason} (CI is not set, so this is a skip, not a failure)")
    assert executable is not None
    return sync_playwright, executable


@dataclass
class Opened:
    page: Any
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright, executable = _require_browser()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _open(browser: Any, path: Path) -> Opened:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    opened = Opened(page)
    page.on(
        "console",
        lambda msg: (
            opened.errors.append(f"{msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda exc: opened.errors.append(f"page error: {exc}"))

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith("file:"):
            request_route.continue_()
        else:
            opened.blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return opened


def _drawn_paths(page: Any, chart_id: str) -> int:
    """Data paths Plotly drew in one chart (lines, areas, bars, markers)."""
    script = """(id) => {
      const el = document.getElementById(id);
      if (!el) return -1;
      const shapes = el.querySelectorAll(
        '.scatterlayer path.js-line, .scatterlayer path.js-fill, .scatterlayer .point, .barlayer .point path');
      return Array.from(shapes).filter((p) => (p.getAttribute('d') || '').length > 10).length;
    }"""
    return int(page.evaluate(script, chart_id))


def test_report_loads_offline_without_errors_and_draws_every_chart(
    browser: Any, reports: Runs
) -> None:
    opened = _open(browser, reports.full / "report.html")
    page = opened.page
    assert opened.errors == []
    assert opened.blocked == []
    for chart in ("equity-chart", "allocation-chart", "pnl-chart", "daily-chart", "symbol-chart"):
        assert _drawn_paths(page, chart) > 0, f"{chart} is empty"
    markers = page.evaluate(
        "document.querySelectorAll('#symbol-chart .scatterlayer .point').length"
    )
    assert markers > 0, "fills are marked on the price chart"
    # another symbol from the picker
    options = page.eval_on_selector_all("#symbol-select option", "els => els.map(e => e.value)")
    assert len(options) >= 2
    page.select_option("#symbol-select", options[-1])
    assert options[-1] in page.inner_text("#symbol-info")
    assert _drawn_paths(page, "symbol-chart") > 0
    assert opened.errors == []
    page.close()


def test_trade_list_sorts_by_a_clicked_column(browser: Any, reports: Runs) -> None:
    opened = _open(browser, reports.full / "report.html")
    page = opened.page
    pnl_column = 8

    def pnl_values() -> list[float]:
        script = f"""() => Array.from(document.querySelectorAll('#trades tbody tr'))
          .map((r) => parseFloat(r.cells[{pnl_column}].dataset.v))"""
        return [float(v) for v in page.evaluate(script)]

    header = page.locator("#trades thead th").nth(pnl_column)
    header.click()
    ascending = pnl_values()
    assert ascending == sorted(ascending) and len(ascending) > 1
    header.click()
    assert pnl_values() == sorted(ascending, reverse=True)
    assert opened.errors == []
    page.close()


@pytest.mark.parametrize("which", ["no_trades", "one_session", "no_store"])
def test_edge_case_reports_load_without_errors(browser: Any, reports: Runs, which: str) -> None:
    opened = _open(browser, getattr(reports, which) / "report.html")
    assert opened.errors == []
    assert opened.blocked == []
    assert _drawn_paths(opened.page, "equity-chart") > 0
    assert opened.page.is_visible("#notices")
    opened.page.close()


def test_compare_page_loads_and_draws(browser: Any, reports: Runs, tmp_path: Path) -> None:
    from momentumbot.reporting.compare import write_compare

    path, _table = write_compare([reports.full, reports.one_session], tmp_path / "cmp")
    opened = _open(browser, path)
    assert opened.errors == []
    assert _drawn_paths(opened.page, "compare-chart") > 0
    opened.page.close()

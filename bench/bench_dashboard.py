"""What the dashboard costs trading: `momentumbot trade` replaying a session against the
simulated gateway (bench_trade.py's setup) without the dashboard, then with it enabled and a
headless Chromium holding the page open (its live stream refreshing every second) while a
scraper reads /metrics every 5 s, as Prometheus would. Reported side by side, one run: bar close
to order at the gateway p50/p99, the bot's CPU per trading minute; and for the page: its weight
(HTML, one status answer) and the time from opening it to the first rendered data.

Usage: .venv/bin/python bench/bench_dashboard.py [--symbols 100] [--speed 600] [--json FILE]
Needs Debian's chromium and playwright (.ci/install-browser.sh).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench_trade import run_one  # bench/ is on sys.path when run as a script

TOKEN = "bench-dashboard-token"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def watch(url: str, out: dict[str, Any]) -> None:
    """Open the page, log in, keep it open (counting its updates) until the bot is gone."""
    from playwright.sync_api import sync_playwright

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(url)
        page.fill("#token", TOKEN)
        page.click("#signin")
        page.wait_for_selector("body[data-updated]", timeout=60_000)
        out["first_render_s"] = round(time.perf_counter() - t0, 3)
        out["page_bytes"] = len(httpx.get(url, timeout=10).content)
        out["status_bytes"] = len(httpx.get(url + "api/status", headers=auth, timeout=10).content)
        seen, updates, scrapes, next_scrape = "", 0, 0, time.monotonic()
        while True:
            try:
                stamp = page.evaluate("() => document.body.dataset.updated")
                if time.monotonic() >= next_scrape:
                    httpx.get(url + "metrics", headers=auth, timeout=5).raise_for_status()
                    scrapes += 1
                    next_scrape += 5.0
            except Exception:  # the bot ended: its dashboard is gone
                break
            if stamp != seen:
                seen, updates = stamp, updates + 1
            time.sleep(0.2)
        out["page_updates"] = updates
        out["metrics_scrapes"] = scrapes
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = run_one(args.symbols, args.speed, Path(tmp) / "without")
        results.append({"dashboard": False, **base})
        port = free_port()
        page: dict[str, Any] = {}

        def during() -> dict[str, Any]:
            threading.Thread(
                target=watch, args=(f"http://127.0.0.1:{port}/", page), daemon=True
            ).start()
            return page

        with_dash = run_one(
            args.symbols, args.speed, Path(tmp) / "with",
            extra_toml=f"\n[dashboard]\nenabled = true\nport = {port}\n",
            env={"MOMENTUMBOT_DASHBOARD_TOKEN": TOKEN}, during=during,
        )  # fmt: skip
        time.sleep(1.0)
        results.append({"dashboard": True, **with_dash})
    for r in results:
        r.pop("latency_ms_all", None)
        print(
            f"{args.symbols} symbols x{args.speed:g}, dashboard {'open' if r['dashboard'] else 'off'}: "
            f"{r['orders']} orders; bar close -> order p50 {r['latency_ms_p50']:.1f} ms, "
            f"p99 {r['latency_ms_p99']:.1f} ms; CPU {r['cpu_s_per_minute'] * 1000:.1f} ms per "
            f"trading minute",
            flush=True,
        )
    print(f"page: {json.dumps(page)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

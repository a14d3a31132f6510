"""Benchmark of paper trading, run as a user runs it: `momentumbot trade` in its own process
against the simulated gateway (here in a thread of this process, so its events and ours share
one clock), over a replayed session of synthetic bars, for 10 and 100 symbols:

1. latency: from a bar closing at the gateway (the instant it has written that minute's bars
   to the bot's socket) to each order decided at that bar's close reaching the gateway
   (placeOrder read off the wire), p50 / p99 / max;
2. CPU seconds the bot process used per trading minute (warm-up and start-up excluded, read
   from /proc when the session opens and when it ends);
3. memory (resident set) of the bot after the full replayed session, and its peak.

The gateway replays at --speed market seconds per real second (default x600: a minute every
0.1 s, far faster than real time; the bot must still place its orders before the next bar).
With --forming-bars S the gateway revises each forming minute every S market seconds (as IB
does) and the bot runs with its default `bar_grace_seconds` (2 s; --bar-grace overrides): it
steps a minute once a later bar of every symbol is in or server time is past the grace, so the
latency includes that wait. Without it (the default) the gateway sends closed bars only and the
bot runs with no grace, as measured before forming bars existed.

Usage: .venv/bin/python bench/bench_trade.py [--symbols 10,100] [--speed 600]
       [--forming-bars S] [--bar-grace S] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic
from momentumbot.gateway.server import GatewayConfig, GatewayServer
from momentumbot.journal.journal import JOURNAL_NAME, read_progress

NS = 1_000_000_000
NS_MIN = 60 * NS
DAY = "2024-01-03"


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


class GatewayThread:
    """The gateway on its own loop in a thread, with hooks timing bar closes and orders."""

    def __init__(self, store: BarStore, cash: float, forming_bars: float = 0.0) -> None:
        self.store = store
        self.cash = cash
        self.forming_bars = forming_bars
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.gw: GatewayServer | None = None
        self.bar_close: dict[int, float] = {}  # label -> perf_counter when its bars were sent
        self.placed: list[tuple[str, float]] = []  # (orderRef, perf_counter) as they arrive
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        cfg = GatewayConfig(start=DAY, step_mode=True, port=0, cash=Decimal(self.cash))
        cfg.faults.forming_bars = self.forming_bars
        gw = GatewayServer(self.store, cfg)
        await gw.start()
        gw.bar_close_listeners.append(self._on_close)
        original = gw.record.order

        def order(what: str, o: Any, now_ns: int) -> None:
            if what == "placed":
                self.placed.append((o.order_ref, time.perf_counter()))
            original(what, o, now_ns)

        gw.record.order = order  # type: ignore[method-assign]
        self.gw = gw

    def _on_close(self, label: int) -> None:
        assert self.gw is not None
        for s in self.gw.sessions:
            s.flush()
        self.bar_close[label] = time.perf_counter()

    def start(self) -> GatewayServer:
        self.thread.start()
        self.ready.wait(60)
        assert self.gw is not None
        return self.gw

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        assert self.gw is not None
        fut = asyncio.run_coroutine_threadsafe(self.gw.stop(), self.loop)
        fut.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def run_one(
    n_symbols: int,
    speed: float,
    root: Path,
    forming_bars: float = 0.0,
    bar_grace: float = 0.0,
    *,
    extra_toml: str = "",
    env: dict[str, str] | None = None,
    during: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """One replayed session; `extra_toml` is appended to the config, `env` added to the bot's
    environment, and `during()` called once the session replays (its result is returned as
    "during")."""
    syms = default_symbols(n_symbols)
    store = BarStore(root / f"store{n_symbols}")
    write_synthetic(store, syms, start="2024-01-02", n_sessions=2, seed=7)
    cfg = root / f"cfg{n_symbols}.toml"
    cash = 20_000 * n_symbols  # budgets large enough to pass the cost filter
    cfg.write_text(
        "symbols = [" + ", ".join(f'"{s}"' for s in syms) + "]\n\n"
        f"[portfolio]\ninitial_cash = {cash}\n\n[broker]\n"
        "history_requests_per_minute = 60000.0\nserver_time_poll_seconds = 0.25\n"
        f"bar_grace_seconds = {bar_grace}\n"
        # past 45 symbols (IB's 50 open historical requests) the rest come from 5-second bars
        'beyond_max_streams = "realtime_bars"\n' + extra_toml,
        encoding="utf-8",
    )
    out = root / f"run{n_symbols}"
    gt = GatewayThread(store, cash, forming_bars)
    gw = gt.start()
    log = open(root / f"bot{n_symbols}.log", "wb")  # noqa: SIM115 - the child writes it
    t_start = time.perf_counter()
    bot = subprocess.Popen(
        [sys.executable, "-m", "momentumbot", "trade", "--config", str(cfg), "--port",
         str(gw.port), "--out", str(out), "--sessions", "1", "--no-console"],
        stdout=log, stderr=log, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        journal = out / JOURNAL_NAME
        while not (journal.exists() and read_progress(journal).get("state") == "trading"):
            if bot.poll() is not None:
                raise RuntimeError(f"the bot exited: {bot.returncode}")
            time.sleep(0.05)
        t_ready = time.perf_counter()
        cpu_ready = proc_cpu(bot.pid)
        gt.call(gw.set_speed, speed)
        gt.call(gw.resume)
        extra = during() if during is not None else None
        rss_after = hwm = 0.0
        cpu_end = cpu_ready
        while bot.poll() is None:
            try:  # the last sample is the bot after its session, writing its report
                cpu_end = proc_cpu(bot.pid)
                rss, peak = proc_rss_mb(bot.pid)
                if rss > 0:
                    rss_after, hwm = rss, peak
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.02)
        bot.wait(120)
        t_end = time.perf_counter()
    finally:
        if bot.poll() is None:
            bot.kill()
        log.close()
        gt.stop()
    if bot.returncode != 0:
        raise RuntimeError(f"the bot failed ({bot.returncode}); see {root / f'bot{n_symbols}.log'}")
    lat = []
    orders = pd.read_csv(out / "orders.csv")
    decided = {
        f"{r.reason}:{ref_run(out)}:{r.order_id}": int(pd.Timestamp(r.decided_at).value)
        for r in orders.itertuples()
    }
    for ref, t_arr in gt.placed:
        d = decided.get(ref)
        if d is None:
            continue
        t_close = gt.bar_close.get(d - NS_MIN)
        if t_close is not None:
            lat.append((t_arr - t_close) * 1000)
    a = np.array(lat)
    minutes = 390
    run = json.loads((out / "summary.json").read_text())["run"]
    return {
        "symbols": n_symbols,
        "speed": speed,
        "forming_bars": forming_bars,
        "bar_grace_seconds": bar_grace,
        "orders": len(gt.placed),
        "latency_ms_p50": float(np.percentile(a, 50)) if len(a) else None,
        "latency_ms_p90": float(np.percentile(a, 90)) if len(a) else None,
        "latency_ms_p99": float(np.percentile(a, 99)) if len(a) else None,
        "latency_ms_max": float(a.max()) if len(a) else None,
        "cpu_s_per_minute": (cpu_end - cpu_ready) / minutes,
        "startup_s": t_ready - t_start,
        "session_wall_s": t_end - t_ready,
        "rss_mb_after_session": rss_after,
        "rss_mb_peak": hwm,
        "bot_step_ms_p50": run.get("step_ms_p50"),
        "bot_step_ms_p99": run.get("step_ms_p99"),
        "latency_ms_all": [round(x, 2) for x in lat],
        "during": extra,
    }


def ref_run(out: Path) -> str:
    return read_progress(out / JOURNAL_NAME).get("run_id", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="10,100")
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--forming-bars", type=float, default=0.0, metavar="S")
    ap.add_argument("--bar-grace", type=float, default=None, metavar="S")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    grace = args.bar_grace
    if grace is None:  # the config's default with forming bars, none without (as before)
        grace = 2.0 if args.forming_bars > 0 else 0.0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.symbols.split(",")):
            r = run_one(n, args.speed, Path(tmp), args.forming_bars, grace)
            results.append(r)
            print(
                f"{n:4d} symbols x{args.speed:g}, forming bars {args.forming_bars:g} s, bar grace "
                f"{grace:g} s: {r['orders']} orders; bar close -> order at "
                f"gateway p50 {r['latency_ms_p50']:.1f} ms, p90 {r['latency_ms_p90']:.1f} ms, "
                f"p99 {r['latency_ms_p99']:.1f} ms, "
                f"max {r['latency_ms_max']:.1f} ms; CPU {r['cpu_s_per_minute'] * 1000:.1f} ms "
                f"per trading minute; RSS after the session {r['rss_mb_after_session']:.0f} MB "
                f"(peak {r['rss_mb_peak']:.0f} MB); start-up {r['startup_s']:.1f} s, session "
                f"{r['session_wall_s']:.1f} s; the bot's own step p50 {r['bot_step_ms_p50']} ms, "
                f"p99 {r['bot_step_ms_p99']} ms",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

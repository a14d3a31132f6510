"""Benchmark of a lockstep replay as a user runs it: `momentumbot gateway --lockstep --speed max`
and `momentumbot trade` as their own processes over one session of synthetic bars (forming bars
on, the gateway's default; the bot with its default `bar_grace_seconds` of 2 s), for 10 and 100
symbols. The bot is started after the gateway, as in the README; the gateway holds the clock
before the open until the bot has subscribed.

Reported: the replay speed in market minutes per real second (the 390 minutes from the open to
the close, timed on the gateway's control port), the lockstep points and the real seconds the
clock waited at them, and whether the orders and fills equal `momentumbot backtest` on the same
bars (they must).

Usage: .venv/bin/python bench/bench_lockstep.py [--symbols 10,100] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic

DAY = "2024-01-03"
OPEN, CLOSE = f"{DAY}T09:30", f"{DAY}T16:00"


class Control:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rw", encoding="utf-8", newline="\n")

    def __call__(self, line: str) -> str:
        self.file.write(line + "\n")
        self.file.flush()
        reply = self.file.readline().strip()
        if not reply.startswith("OK"):
            raise RuntimeError(f"{line}: {reply}")
        return reply[3:]


def same(a: Path, b: Path) -> bool:
    cols_o = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status"]
    cols_f = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price"]
    try:
        for name, cols in (("orders.csv", cols_o), ("fills.csv", cols_f)):
            pd.testing.assert_frame_equal(
                pd.read_csv(a / name)[cols], pd.read_csv(b / name)[cols], check_exact=False
            )
    except AssertionError:
        return False
    return True


def run_one(n: int, root: Path) -> dict[str, Any]:
    syms = default_symbols(n)
    store = root / f"store{n}"
    write_synthetic(BarStore(store), syms, start="2024-01-02", n_sessions=2, seed=7)
    cfg = root / f"cfg{n}.toml"
    cash = 20_000 * n
    cfg.write_text(
        "symbols = [" + ", ".join(f'"{s}"' for s in syms) + "]\n\n"
        f"[portfolio]\ninitial_cash = {cash}\n\n[broker]\nhistory_requests_per_minute = 60000.0\n"
        # past 45 symbols (IB's 50 open historical requests) the rest come from 5-second bars
        'beyond_max_streams = "realtime_bars"\n',
        encoding="utf-8",
    )
    mb = [sys.executable, "-m", "momentumbot"]
    bt = root / f"bt{n}"
    subprocess.run(
        [*mb, "backtest", "--config", str(cfg), "--store", str(store), "--start", DAY, "--end",
         DAY, "--out", str(bt), "--no-report"], check=True, capture_output=True,
    )  # fmt: skip
    gw_args = [*mb, "gateway", "--store", str(store), "--start", DAY, "--port", "0",
               "--control-port", "0", "--lockstep", "--speed", "max", "--cash", str(cash),
               "--log-level", "WARNING"]  # fmt: skip
    gw = subprocess.Popen(gw_args, stdout=subprocess.PIPE, text=True)
    out = root / f"run{n}"
    bot = None
    try:
        assert gw.stdout is not None
        words = gw.stdout.readline().split()
        port, control_port = int(words[1].rsplit(":", 1)[1]), int(words[3])
        control = Control(control_port)
        log = open(root / f"bot{n}.log", "wb")  # noqa: SIM115 - the child writes it
        bot = subprocess.Popen(
            [*mb, "trade", "--config", str(cfg), "--port", str(port), "--out", str(out),
             "--sessions", "1", "--no-console"], stdout=log, stderr=log,
        )  # fmt: skip
        t_open = t_close = 0.0
        status: dict[str, Any] = {}
        while bot.poll() is None or not t_close:
            now = control("time")
            if not t_open and now >= OPEN:
                t_open = time.perf_counter()
            if t_open and not t_close and now >= CLOSE:
                t_close = time.perf_counter()
                status = json.loads(control("status"))
            if bot.poll() is not None and not t_close:
                raise RuntimeError(f"the bot ended before the close; see {root / f'bot{n}.log'}")
            time.sleep(0.01)
        bot.wait(120)
        log.close()
        control("shutdown")
        gw.wait(30)
    finally:
        for p in (bot, gw):
            if p is not None and p.poll() is None:
                p.kill()
    if bot.returncode != 0:
        raise RuntimeError(f"the bot failed ({bot.returncode}); see {root / f'bot{n}.log'}")
    wall = t_close - t_open
    return {
        "symbols": n,
        "session_wall_s": wall,
        "market_minutes_per_s": 390 / wall,
        "lockstep": status.get("lockstep"),
        "orders": len(pd.read_csv(out / "orders.csv")),
        "equals_backtest": same(out, bt),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="10,100")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.symbols.split(",")):
            r = run_one(n, Path(tmp))
            results.append(r)
            ls = r["lockstep"] or {}
            print(
                f"{n:4d} symbols, --lockstep --speed max: 390 market minutes in "
                f"{r['session_wall_s']:.1f} s = {r['market_minutes_per_s']:.1f} market minutes "
                f"per real second; {ls.get('points')} lockstep points, "
                f"{ls.get('waited_seconds')} s waited at them (settle {ls.get('settle_seconds')} "
                f"s); {r['orders']} orders; equal to the backtest: {r['equals_backtest']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

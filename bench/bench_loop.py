"""The minute loop alone (`kernel.run_minutes`), in CPU seconds of its thread, before and after.

`--capture` runs a backtest of a synthetic store once and saves every chunk's inputs of the
minute loop (the matrices, flags, allocator rows and quiet volumes) to a file. Then each
`--src` (a checkout's src/, run in its own process with it on PYTHONPATH) replays those
chunks through `run_minutes` from a fresh state `--repeats` times (after one untimed run
that loads the compiled code), with the tables allocated and touched once beforehand as a
backtest reuses them, and prints the thread's CPU seconds (which move much less than wall
seconds on a shared machine) and a digest of every order, fill, allocation and minute
column (each as int64 or float64, so a table's packing does not change it).

    .venv/bin/python bench/bench_loop.py --capture bench/out/store_100x250 100 /tmp/loop100.pkl
    .venv/bin/python bench/bench_loop.py --replay /tmp/loop100.pkl --src /tmp/before/src,src --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ORDER_FIELDS = "decided_ns symbol side quantity reason status filled value rated requested risk"
FILL_FIELDS = "order_id time_ns symbol side quantity price commission slippage"


def capture(store: Path, n_sym: int, path: Path) -> None:
    from momentumbot.config.schema import AppConfig
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols
    from momentumbot.engine import backtest as bt
    from momentumbot.execution.costs import cost_params

    chunks: list[dict[str, np.ndarray]] = []
    original = bt._run_chunk

    def record(chunk: Any, plan: Any, *rest: Any) -> None:
        lo, hi = chunk.lo, chunk.hi
        chunks.append(
            {
                "o": chunk.o.copy(), "c": chunk.c.copy(), "v": chunk.v.copy(),
                "labels": plan.grid.label_ns[lo:hi].copy(), "flags": plan.flags[lo:hi].copy(),
                "month": plan.month_id[lo:hi].copy(), "alloc_row": chunk.alloc_row.copy(),
                "qv_at": chunk.qv_at.copy(), "qv_n": chunk.qv_n.copy(),
            }
        )  # fmt: skip
        original(chunk, plan, *rest)

    bt._run_chunk = record  # type: ignore[assignment]
    cfg = AppConfig(symbols=default_symbols(n_sym), portfolio={"initial_cash": 10_000.0 * n_sym})
    res = bt.run_backtest(cfg, BarStore(store))
    meta = {
        "kp": bt.kernel_params(cfg, n_sym), "cp": cost_params(cfg.execution),
        "cash": cfg.portfolio.initial_cash, "n": n_sym, "bars": res.bars_used,
    }  # fmt: skip
    path.write_bytes(pickle.dumps((meta, chunks), protocol=5))
    print(f"{len(chunks)} chunks, {res.bars_used:,} bars, {len(res.orders):,} orders -> {path}")


def replay(path: Path, repeats: int) -> None:
    from momentumbot.engine import kernel as k

    meta, chunks = pickle.loads(path.read_bytes())
    kp, cp, n = meta["kp"], meta["cp"], meta["n"]
    n_min = sum(ch["o"].shape[0] for ch in chunks)
    alloc_rows = max(int((ch["alloc_row"] >= 0).sum()) for ch in chunks) * n + 10 * n
    orders, fills = k.new_orders(400_000), k.new_fills(200_000)
    allocs, out = k.new_allocs(alloc_rows), k.new_minute_out(n_min)

    def once(h: Any = None) -> tuple[float, Any]:
        st = k.new_state(n, kp.quiet_window, meta["cash"])
        for table in (orders, fills, allocs, out):
            for col in table:
                col.fill(0)
        off, cpu = 0, 0.0
        for ch in chunks:
            m_n = ch["o"].shape[0]
            sub = k.MinuteOut(*(col[off : off + m_n] for col in out))
            t0 = time.thread_time()
            done = k.run_minutes(
                ch["o"], ch["c"], ch["v"], ch["labels"], ch["flags"], ch["month"],
                ch["alloc_row"], ch["qv_at"], ch["qv_n"], 0, m_n, kp, cp, st, orders, fills,
                allocs, sub,
            )  # fmt: skip
            cpu += time.thread_time() - t0
            assert done == m_n, "tables sized for the whole run"
            if h is not None:
                for col in allocs:
                    h.update(_canon(col[: int(st.counters[k.C_ALLOCS])]))
            st.counters[k.C_ALLOCS] = 0  # as the backtest hands the rows on after each chunk
            off += m_n
        return cpu, st

    once()
    times = sorted(once()[0] for _ in range(repeats))
    h = hashlib.sha256()
    _, st = once(h)
    n_o, n_f = int(st.counters[k.C_ORDERS]), int(st.counters[k.C_FILLS])
    for name in ORDER_FIELDS.split():
        h.update(_canon(getattr(orders, name)[:n_o]))
    for name in FILL_FIELDS.split():
        h.update(_canon(getattr(fills, name)[:n_f]))
    for col in out:
        h.update(_canon(col))
    print(
        f"loop cpu min {times[0]:.3f} s, median {times[len(times) // 2]:.3f} s, "
        f"{meta['bars'] / times[0] / 1e6:.1f} M bars/s; orders {n_o:,} fills {n_f:,}; "
        f"outputs {h.hexdigest()[:16]}"
    )


def _canon(a: np.ndarray) -> bytes:
    kind = np.float64 if a.dtype.kind == "f" else np.int64
    return np.ascontiguousarray(a, dtype=kind).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", nargs=3, metavar=("STORE", "SYMBOLS", "FILE"))
    ap.add_argument("--replay", type=Path, metavar="FILE")
    ap.add_argument("--src", default="src", help="comma-separated src/ directories, alternated")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.capture:
        store, n_sym, path = args.capture
        capture(Path(store), int(n_sym), Path(path))
    elif args.child:
        replay(args.replay, args.repeats)
    elif args.replay:
        for rnd in range(args.rounds):
            for src in args.src.split(","):
                env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
                cmd = [sys.executable, __file__, "--child", "--replay", str(args.replay)]
                res = subprocess.run(
                    [*cmd, "--repeats", str(args.repeats)], env=env, check=True,
                    capture_output=True, text=True,
                )  # fmt: skip
                print(f"round {rnd} {src}: {res.stdout.strip()}", flush=True)


if __name__ == "__main__":
    main()

"""The quiet-volume pass alone, on the bench's synthetic minute volumes.

The volumes are those of `bench_backtest.py`'s store (the project's generator, seed 7, from
2023-01-03), put on the minute grid (NaN close = no bar). Each round runs, in a fresh process,
the pass (`_walk_symbols`) over the whole matrix in 8 chunks on one thread, recording the
figure at every 5th minute as the backtest does, after one untimed pass (compiled code
loaded): seconds of that thread's CPU time (least moved by other processes on the machine)
and wall seconds, nanoseconds a symbol-minute, and a digest of every figure.

    .venv/bin/python bench/bench_quiet_volume.py --sizes 100x250 --rounds 3 --before /tmp/old/src

With --before SRC, rounds alternate SRC's package and this one, and the digests must agree.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CHUNKS = 8
EVERY = 5  # the default rebalance_minutes (--every: 1 is what a sweep records)


def matrices(n_sym: int, n_sessions: int) -> tuple[Path, Path]:
    """(volume, close) as symbols x minutes .npy files, made once."""
    import numpy as np
    import pandas as pd

    from momentumbot.data.calendar import TradingCalendar
    from momentumbot.data.synthetic import default_symbols, generate_bars, synthetic_sessions

    v_path = OUT / f"qv_volume_{n_sym}x{n_sessions}.npy"
    c_path = OUT / f"qv_close_{n_sym}x{n_sessions}.npy"
    if v_path.exists() and c_path.exists():
        return v_path, c_path
    OUT.mkdir(parents=True, exist_ok=True)
    cal = TradingCalendar("XNYS")
    sessions = synthetic_sessions("2023-01-03", n_sessions, cal)
    labels = cal.grid(sessions).label_ns
    volume = np.full((n_sym, labels.shape[0]), np.nan)
    close = np.full((n_sym, labels.shape[0]), np.nan)
    names = default_symbols(n_sym)
    for i in range(0, n_sym, 20):
        bars = generate_bars(names[i : i + 20], sessions, seed=7, calendar=cal)
        for j, name in enumerate(names[i : i + 20]):
            frame = bars[name]
            at = np.searchsorted(labels, pd.DatetimeIndex(frame["ts"]).asi8)
            volume[i + j, at] = frame["volume"].to_numpy(np.float64)
            close[i + j, at] = frame["close"].to_numpy()
    np.save(v_path, volume)
    np.save(c_path, close)
    return v_path, c_path


def child(v_path: str, c_path: str, every: str) -> None:
    import numpy as np

    from momentumbot.allocation.quiet_volume import _walk_symbols

    volume = np.load(v_path)
    close = np.load(c_path)
    n_sym, n_min = volume.shape
    window = 390
    row = np.full(n_min, -1, np.int64)
    at = np.arange(0, n_min, int(every))
    row[at] = np.arange(at.shape[0])
    bounds = np.linspace(0, n_min, CHUNKS + 1).astype(np.int64)
    parts = [
        (np.ascontiguousarray(volume[:, lo:hi]), np.ascontiguousarray(close[:, lo:hi]), row[lo:hi])
        for lo, hi in itertools.pairwise(bounds.tolist())
    ]

    def walk() -> tuple[float, float, np.ndarray]:
        ring = np.zeros((n_sym, window))
        srt = np.zeros((n_sym, window))
        count = np.zeros(n_sym, np.int64)
        head = np.zeros(n_sym, np.int64)
        started = np.zeros(n_sym, np.bool_)
        qv = np.zeros((at.shape[0], n_sym))
        qn = np.zeros((at.shape[0], n_sym), np.int64)
        t_cpu, t_wall = time.thread_time(), time.perf_counter()
        for v, c, r in parts:
            _walk_symbols(0, n_sym, v, c, r, ring, srt, count, head, started, window, qv, qn)
        return time.thread_time() - t_cpu, time.perf_counter() - t_wall, qv

    walk()
    cpu, wall, qv = walk()
    print(
        json.dumps(
            {"cpu_s": cpu, "wall_s": wall, "cells": n_sym * n_min,
             "digest": hashlib.sha256(qv.tobytes()).hexdigest()[:16]}
        )
    )  # fmt: skip


def run(src: Path, v_path: Path, c_path: Path, every: int) -> dict[str, float | str]:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(v_path), str(c_path), str(every)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100x250")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, help="an older checkout's src/ to run alternately")
    ap.add_argument("--every", type=int, default=EVERY, help="a figure every N minutes")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    here = HERE.parent / "src"
    for size in args.sizes.split(","):
        n_sym, n_sessions = (int(x) for x in size.split("x"))
        v_path, c_path = matrices(n_sym, n_sessions)
        sides = [("before", args.before), ("after", here)] if args.before else [("after", here)]
        got: dict[str, list[dict[str, float | str]]] = {name: [] for name, _ in sides}
        for i in range(args.rounds):
            for name, src in sides:
                r = run(src, v_path, c_path, args.every)
                got[name].append(r)
                ns = float(r["cpu_s"]) / float(r["cells"]) * 1e9
                print(
                    f"{name:>6} {size} #{i}: cpu {float(r['cpu_s']):.3f} s ({ns:.1f} ns a cell) "
                    f"wall {float(r['wall_s']):.3f} s digest {r['digest']} "
                    f"load {os.getloadavg()[0]:.1f}"
                )
        for name, rs in got.items():
            cpu = statistics.median(float(r["cpu_s"]) for r in rs)
            wall = statistics.median(float(r["wall_s"]) for r in rs)
            cells = float(rs[0]["cells"])
            print(
                f"{name:>6} {size} median: cpu {cpu:.3f} s ({cpu / cells * 1e9:.1f} ns a cell), wall {wall:.3f} s"
            )
        digests = {str(r["digest"]) for rs in got.values() for r in rs}
        print(f"  figures identical across runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()

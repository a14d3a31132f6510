"""Backtest speed and memory on synthetic minute bars from the project's generator.

Each size runs in a fresh process (so peak memory is that run's own), after one warm-up
run of the same process on a small slice so that compiled code is loaded (and, before the
measured runs, one such slice per checkout in a process of its own, so that no measured
process compiles: a checkout's first run after a change otherwise compiles the kernel in
its warm-up, and that compiling's memory lands in its peak RSS: 100-250 MB more at
500 x 250 in the runs measured), and reports:
load (Parquet -> minute matrices), kernel (the engine), collect (tables), write (the run
folder), total, bars per second on the engine and end to end, and peak RSS (the child's
own high-water mark, ru_maxrss, so each size's figure is its own run's; taken when the run
returns, before the run folder is hashed for the comparison).

The engine phase overlaps reading: `kernel` is its wall time less the reading the minute
loop waited for; `load+engine wall` is the phase's wall time with reading included, `loop`
the minute loop's own seconds and `waited` the seconds it waited for the next chunk.
With --engine-alone each measured process then also times the engine by itself, as issue 13
measures it: every bar read into memory first, the allocation rows dropped, nothing written
(`engine_alone`; the fastest of three runs; it holds every bar, so not for the widest sizes).

    .venv/bin/python bench/bench_backtest.py        # 10x250 ... 500x250, 1000x250, 3000x20
    .venv/bin/python bench/bench_backtest.py --sizes 10x250 --repeats 3
    .venv/bin/python bench/bench_backtest.py --sizes 100x250 --repeats 3 --before /tmp/old/src

With --before SRC each repeat runs SRC's package (an older checkout's src/, on PYTHONPATH)
and then this one, alternately, prints medians of both, and compares the run folders' files
byte for byte (summary.json without its timing and store lines).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"


def ensure_store(root: Path, n_sym: int, n_sessions: int) -> Path:
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols, write_synthetic

    store = root / f"store_{n_sym}x{n_sessions}"
    names = default_symbols(n_sym)
    bars = BarStore(store)
    if not all(bars.has(s) for s in names):
        t = time.perf_counter()
        write_synthetic(
            bars, names, start="2023-01-03", n_sessions=n_sessions, seed=7, replace=True
        )
        print(f"  generated {store.name} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return store


def folder_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of a run folder (summary.json without timing and store)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == "run.log":
            continue
        if p.name == "summary.json":
            doc = json.loads(p.read_bytes())
            doc.get("run", {}).pop("engine_seconds", None)
            doc.get("run", {}).pop("store", None)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
        else:
            # streamed: allocations.csv is 0.7-1.4 GB at 500-1000 symbols x 250 sessions
            with p.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256")
        out[str(p.relative_to(folder))] = digest.hexdigest()
    return out


def child(store: Path, n_sym: str, cash: float) -> dict[str, Any]:
    """One measured run in this process (called in a fresh interpreter); n_sym is a count
    of generator symbols or `all` for every symbol in the store."""
    from momentumbot.app.backtest import backtest_to_folder
    from momentumbot.config.schema import AppConfig
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols

    source = BarStore(store)
    names = source.symbols() if n_sym == "all" else default_symbols(int(n_sym))
    cfg = AppConfig(symbols=names, portfolio={"initial_cash": cash})
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: load the compiled kernel from the cache on a two-session slice
        first = source.info(names[0]).first_ns
        import pandas as pd

        day = pd.Timestamp(first, tz="UTC").tz_convert("America/New_York").date()
        backtest_to_folder(cfg, source, Path(tmp) / "warm", start=str(day), end=str(day))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        run = backtest_to_folder(cfg, source, Path(tmp) / "run")
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        # the run's high-water mark, taken before the run folder is hashed below
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = run.result.timings
        alone = engine_alone(cfg, source, names) if os.environ.get(ALONE_ENV) else {}
        return alone | {
            "digests": folder_digests(Path(tmp) / "run"),
            "bars": run.result.bars_used,
            "orders": len(run.result.orders),
            "fills": len(run.result.fills),
            "load_s": t["load"],
            "kernel_s": t["kernel"],
            "quiet_volume_s": t["quiet_volume"],
            # the engine phase's parts (absent before issue 13's pipeline): the minute loop's
            # own seconds, the seconds it waited for the next chunk, the phase's wall time
            "loop_s": t.get("minute_loop", float("nan")),
            "waited_s": t.get("waited", float("nan")),
            # of which it spent on the next chunk's blocks (session 7's shared work)
            "helped_s": t.get("helped", float("nan")),
            "engine_wall_s": t.get("engine_wall", t["load"] + t["kernel"]),
            "collect_s": t["collect"],
            "write_s": t["write"],
            # formatting allocations.csv on its worker thread (overlapping the engine);
            # None before it was streamed in the background
            "allocations_s": t.get("allocations_seconds"),
            # equity.csv and benchmark.csv formatted on their thread while the engine runs
            # (None before they were streamed)
            "minutes_s": t.get("minutes_seconds"),
            "minutes_cpu_s": t.get("minutes_cpu_seconds"),
            "total_s": t["total"],
            # CPU seconds of the run, every thread (user + system): moves far less than the
            # wall seconds when other processes share the cores
            "cpu_s": ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime,
            "kernel_bars_per_s": run.result.bars_used / t["kernel"],
            "total_bars_per_s": run.result.bars_used / t["total"],
            "rss_before_mb": rss_before,
            "peak_rss_mb": peak_rss,
        }


ALONE_ENV = "BENCH_ENGINE_ALONE"
ALONE_ROUNDS = 3


def engine_alone(cfg: Any, source: Any, names: list[str]) -> dict[str, float]:
    """The engine by itself, as the issue measures it (after the measured run, in the same
    process): every symbol's bars read into memory first (`MemoryBarSource`), then
    `run_backtest` with the allocation rows dropped by the sink, so the engine phase is the
    quiet-volume pass, the transposes and the minute loop (and putting the in-memory bars on
    the minute grid, which the worker thread does beside the loop), with no Parquet read
    and no file written. `kernel` of the fastest of ALONE_ROUNDS runs."""
    from momentumbot.data.memory import MemoryBarSource
    from momentumbot.engine.backtest import run_backtest

    mem = MemoryBarSource({s: source.read_arrays(s, 0, 2**62) for s in names})
    best: dict[str, float] = {}
    for _ in range(ALONE_ROUNDS):
        res = run_backtest(cfg, mem, allocation_sink=lambda part: None)
        t = res.timings
        if not best or t["kernel"] < best["alone_kernel_s"]:
            best = {
                "alone_kernel_s": t["kernel"],
                "alone_quiet_volume_s": t["quiet_volume"],
                "alone_loop_s": t.get("minute_loop", float("nan")),
                "alone_wall_s": t.get("engine_wall", float("nan")),
                "alone_bars_per_s": res.bars_used / t["kernel"],
            }
    return best


def prime(store: Path, n_sym: str, cash: float) -> None:
    """Only the warm-up slice (in a process of its own): compiles what the compiled-code
    cache lacks for this checkout, so no measured process compiles (compiling's memory
    would be in its peak RSS, and its seconds in nothing measured)."""
    from momentumbot.app.backtest import backtest_to_folder
    from momentumbot.config.schema import AppConfig
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols

    source = BarStore(store)
    names = source.symbols() if n_sym == "all" else default_symbols(int(n_sym))
    cfg = AppConfig(symbols=names, portfolio={"initial_cash": cash})
    import pandas as pd

    first = source.info(names[0]).first_ns
    day = pd.Timestamp(first, tz="UTC").tz_convert("America/New_York").date()
    with tempfile.TemporaryDirectory() as tmp:
        backtest_to_folder(cfg, source, Path(tmp) / "warm", start=str(day), end=str(day))


def run_child(
    store: Path, n_sym: int, cash: float, src: Path | None, mode: str = "--child"
) -> dict:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(store), str(n_sym), str(cash)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    if mode != "--child":
        return {}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def line(size: str, rep: int, r: dict) -> str:
    return (
        f"{size:>8} #{rep}: {r['bars']:>10,} bars | load {r['load_s']:.3f} s | "
        f"kernel {r['kernel_s']:.3f} s ({r['kernel_bars_per_s'] / 1e6:.2f} M bars/s, "
        f"of which quiet volume {r['quiet_volume_s']:.3f} s) | "
        f"load+engine wall {r['engine_wall_s']:.3f} s (loop {r['loop_s']:.3f} s, "
        f"waited {r['waited_s']:.3f} s, of which helping {r.get('helped_s', float('nan')):.3f} s) | "
        f"collect {r['collect_s']:.3f} s | write {r['write_s']:.3f} s | "
        + (
            f"allocations.csv on its thread {r['allocations_s']:.3f} s | "
            if r.get("allocations_s") is not None
            else ""
        )
        + (
            f"equity/benchmark.csv on their thread {r['minutes_s']:.3f} s "
            f"(cpu {r['minutes_cpu_s']:.3f} s) | "
            if r.get("minutes_s") is not None
            else ""
        )
        + f"total {r['total_s']:.3f} s ({r['total_bars_per_s'] / 1e6:.2f} M bars/s) | "
        + (f"cpu {r['cpu_s']:.2f} s | " if "cpu_s" in r else "")
        + f"orders {r['orders']:,} fills {r['fills']:,} | peak RSS {r['peak_rss_mb']:.0f} MB"
        + (
            f" | engine alone {r['alone_kernel_s']:.3f} s ({r['alone_bars_per_s'] / 1e6:.2f} M "
            f"bars/s; quiet volume {r['alone_quiet_volume_s']:.3f} s, loop "
            f"{r['alone_loop_s']:.3f} s, phase wall {r['alone_wall_s']:.3f} s)"
            if "alone_kernel_s" in r
            else ""
        )
    )


def summarise(size: str, rows: list[dict]) -> None:
    """Medians of before and after, and whether every run folder file is the same."""
    keys = (
        "load_s", "kernel_s", "quiet_volume_s", "engine_wall_s", "collect_s", "write_s",
        "total_s", "cpu_s", "peak_rss_mb",
    )  # fmt: skip
    for label in ("before", "after"):
        mine = [r for r in rows if r["variant"] == label]
        med = {k: statistics.median(r[k] for r in mine) for k in keys}
        print(f"{label:>6} {size} median: " + " | ".join(f"{k} {v:.3f}" for k, v in med.items()))
    digests = [r["digests"] for r in rows]
    same = all(d == digests[0] for d in digests)
    diff = sorted({k for d in digests for k in d if d.get(k) != digests[0].get(k)})
    print(
        f"  run folders identical across before/after: {same}"
        + (f" (differ: {diff})" if diff else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x250,100x250,500x250,1000x250,3000x20")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--before", type=Path, help="an older checkout's src/ to run alternately")
    ap.add_argument(
        "--engine-alone",
        action="store_true",
        help="also time the engine alone, bars in memory and no file written (holds every bar)",
    )
    ap.add_argument(
        "--child", nargs=3, metavar=("STORE", "SYMBOLS", "CASH"), help=argparse.SUPPRESS
    )
    ap.add_argument(
        "--prime", nargs=3, metavar=("STORE", "SYMBOLS", "CASH"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        store, n_sym, cash = args.child
        print(json.dumps(child(Path(store), n_sym, float(cash))))
        return
    if args.prime:
        store, n_sym, cash = args.prime
        prime(Path(store), n_sym, float(cash))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.engine_alone:
        os.environ[ALONE_ENV] = "1"  # the children inherit it
    rows = []
    for size in args.sizes.split(","):
        n_sym, n_sessions = (int(x) for x in size.split("x"))
        store = ensure_store(args.out, n_sym, n_sessions)
        cash = 10_000.0 * n_sym  # 10k USD a symbol: budgets large enough to trade
        variants = [("before", args.before), ("after", None)] if args.before else [("", None)]
        for _, src in variants:  # compile what the cache lacks, outside the measured runs
            run_child(store, n_sym, cash, src, mode="--prime")
        for rep in range(args.repeats):
            for label, src in variants:
                r = run_child(store, n_sym, cash, src)
                r.update(size=size, repeat=rep, variant=label)
                rows.append(r)
                print(f"{label:>6} " + line(size, rep, r), flush=True)
        if args.before:
            summarise(size, [r for r in rows if r["size"] == size])
    (args.out / "bench_backtest.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

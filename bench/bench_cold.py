"""The demo's first backtest with an empty compiled-code cache (cold) and again (warm).

Each round runs `momentumbot demo` in a fresh process (wall seconds, and the CPU seconds of
it and of the compile worker it starts: on a machine shared with other jobs the wall time
swings, the CPU time much less): first with a new, empty cache directory, then again with
that cache. Cold, a run as small as the demo goes uncompiled (`app.first_run`: the kernels
as plain Python, nothing cached), so an unmeasured run with MOMENTUMBOT_JIT=on fills the
cache before the warm runs (a demo after `make install`); --jit on makes the cold run
compile everything on the spot, as before that choice existed.
The sample store is generated once beforehand, so the times are the backtest and its
report. With --before SRC, an older checkout's src/ (on PYTHONPATH) runs in the same
rounds, alternately, and the medians of both are printed.

    .venv/bin/python bench/bench_cold.py --rounds 3
    .venv/bin/python bench/bench_cold.py --rounds 3 --before /tmp/old/src
    .venv/bin/python bench/bench_cold.py --rounds 3 --warm 2 --before /tmp/old/src --also patched=/tmp/new/src

--warm-only fills each variant's cache once (a cold run, not counted) and then alternates
only warm runs, --rounds of them per variant (what the warm figure needs, without the
cold runs' minutes). --warm N runs the warm demo N times after each cold one (the medians are over all of
them); --also LABEL=SRC adds another src/ to the rotation (a change not yet on this
branch). Each warm run's load average before it is printed (the demo's chart worker starts
only with a core free).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JIT = ["auto"]  # MOMENTUMBOT_JIT for every demo run (--jit)


def demo(
    src: Path | None, cache: Path, store: Path, out: Path, jit: str | None = None
) -> tuple[float, float]:
    """Wall seconds of `momentumbot demo` and the CPU seconds (user + system) of it and the
    processes it waited for (the compile worker, the chart worker)."""
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env["XDG_CACHE_HOME"] = str(cache)
    env["MOMENTUMBOT_JIT"] = jit or JIT[0]
    if src is not None:
        env["PYTHONPATH"] = str(src)
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "momentumbot", "demo", "--store", str(store), "--out", str(out)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _warm_only(
    rounds: int, variants: list[tuple[str, Path | None]], root: Path, store: Path
) -> None:
    """Each variant's cache filled once, then warm runs alternated between variants."""
    caches = {label: root / f"cache-{label}" for label, _ in variants}
    for label, src in variants:
        demo(src, caches[label], store, root / "run", jit="on")  # compiles into the cache
    times: dict[str, list[float]] = {label: [] for label, _ in variants}
    for r in range(rounds):
        line = []
        for label, src in variants:
            load = os.getloadavg()[0]
            wall, cpu = demo(src, caches[label], store, root / "run")
            times[label].append(wall)
            line.append(f"{label} {wall:.2f} s (cpu {cpu:.1f}, load {load:.1f})")
        print(f"round {r}: " + ", ".join(line), flush=True)
    for label, _ in variants:
        print(f"{label:>10} warm median of {rounds}: {statistics.median(times[label]):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", type=int, default=1, help="warm runs after each cold one")
    ap.add_argument("--warm-only", action="store_true", help="fill once, then warm runs only")
    ap.add_argument("--before", type=Path, help="an older checkout's src/ to run alternately")
    ap.add_argument(
        "--jit", choices=("auto", "on", "off"), default="auto",
        help="MOMENTUMBOT_JIT for the runs: auto (a cold demo runs uncompiled), on (a cold "
        "demo compiles first, as before that choice existed)",
    )  # fmt: skip
    ap.add_argument(
        "--also", action="append", default=[], metavar="LABEL=SRC",
        help="another src/ to run alternately (repeatable)",
    )  # fmt: skip
    args = ap.parse_args()
    JIT[0] = args.jit
    variants: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        variants.insert(0, ("before", args.before))
    for item in args.also:
        label, _, src = item.partition("=")
        variants.append((label, Path(src)))
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        root = Path(tmp)
        store = root / "store"
        from momentumbot.data.store import BarStore
        from momentumbot.data.synthetic import default_symbols, write_synthetic

        # the demo's own sample bars (as `momentumbot demo` generates them)
        write_synthetic(
            BarStore(store), default_symbols(10), start="2024-01-02", n_sessions=20, seed=7,
            replace=True,
        )  # fmt: skip
        if args.warm_only:
            _warm_only(args.rounds, variants, root, store)
            return
        for r in range(args.rounds):
            for label, src in variants:
                cache = root / f"cache-{label}-{r}"
                load = os.getloadavg()[0]
                cold, cold_cpu = demo(src, cache, store, root / "run")
                times.setdefault((label, "cold"), []).append(cold)
                times.setdefault((label, "cold cpu"), []).append(cold_cpu)
                if JIT[0] != "on":  # the cold run may have compiled nothing: fill the cache
                    demo(src, cache, store, root / "run", jit="on")
                warms = []
                for _ in range(args.warm):
                    warm_load = os.getloadavg()[0]
                    warm, warm_cpu = demo(src, cache, store, root / "run")
                    times.setdefault((label, "warm"), []).append(warm)
                    times.setdefault((label, "warm cpu"), []).append(warm_cpu)
                    warms.append(f"{warm:.2f} s (cpu {warm_cpu:.1f}, load {warm_load:.1f})")
                shutil.rmtree(cache, ignore_errors=True)
                print(
                    f"round {r} {label:>6}: cold {cold:.1f} s (cpu {cold_cpu:.1f} s; load "
                    f"average {load:.1f} at the start), warm {', '.join(warms)}",
                    flush=True,
                )
    for label, _ in variants:
        med = {kind: statistics.median(times[(label, kind)]) for kind in
               ("cold", "warm", "cold cpu", "warm cpu")}  # fmt: skip
        print(
            f"{label:>6} median of {args.rounds}: cold {med['cold']:.1f} s (cpu "
            f"{med['cold cpu']:.1f} s), warm {med['warm']:.2f} s (cpu {med['warm cpu']:.1f} s, "
            f"median of {len(times[(label, 'warm')])})"
        )


if __name__ == "__main__":
    main()

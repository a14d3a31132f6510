"""The demo's first backtest with an empty compiled-code cache (cold) and again (warm).

Each round runs `momentumbot demo` in a fresh process (wall seconds, and the CPU seconds of
it and of the compile worker it starts: on a machine shared with other jobs the wall time
swings, the CPU time much less): first with a new, empty cache
directory (everything compiled on the spot), then a second time with that cache (loaded).
The sample store is generated once beforehand, so the times are the backtest and its
report. With --before SRC, an older checkout's src/ (on PYTHONPATH) runs in the same
rounds, alternately, and the medians of both are printed.

    .venv/bin/python bench/bench_cold.py --rounds 3
    .venv/bin/python bench/bench_cold.py --rounds 3 --before /tmp/old/src
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


def demo(src: Path | None, cache: Path, store: Path, out: Path) -> tuple[float, float]:
    """Wall seconds of `momentumbot demo` and the CPU seconds (user + system) of it and the
    processes it waited for (the compile worker)."""
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env["XDG_CACHE_HOME"] = str(cache)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, help="an older checkout's src/ to run alternately")
    args = ap.parse_args()
    variants: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        variants.insert(0, ("before", args.before))
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
        for r in range(args.rounds):
            for label, src in variants:
                cache = root / f"cache-{label}-{r}"
                load = os.getloadavg()[0]
                cold, cold_cpu = demo(src, cache, store, root / "run")
                warm, warm_cpu = demo(src, cache, store, root / "run")
                shutil.rmtree(cache, ignore_errors=True)
                for kind, value in (("cold", cold), ("warm", warm), ("cold cpu", cold_cpu),
                                    ("warm cpu", warm_cpu)):  # fmt: skip
                    times.setdefault((label, kind), []).append(value)
                print(
                    f"round {r} {label:>6}: cold {cold:.1f} s (cpu {cold_cpu:.1f} s), warm "
                    f"{warm:.1f} s (cpu {warm_cpu:.1f} s); load average {load:.1f} at the start",
                    flush=True,
                )
    for label, _ in variants:
        med = {kind: statistics.median(times[(label, kind)]) for kind in
               ("cold", "warm", "cold cpu", "warm cpu")}  # fmt: skip
        print(
            f"{label:>6} median of {args.rounds}: cold {med['cold']:.1f} s (cpu "
            f"{med['cold cpu']:.1f} s), warm {med['warm']:.1f} s (cpu {med['warm cpu']:.1f} s)"
        )


if __name__ == "__main__":
    main()

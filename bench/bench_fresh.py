"""Fresh clone to the demo's report.html, as a new user runs it: the README's first command.

Each round clones this repository (its committed HEAD) into a new temporary directory, with
an empty compiled-code cache (XDG_CACHE_HOME in the temp directory), and runs `make demo`
there: a new .venv, the pinned install (uv from PyPI, else pip), the demo backtest and its
report (uncompiled: nothing is compiled yet), then `momentumbot precompile` for the runs
after it. The time is from the clone to report.html on disk (the demo's `report:` line);
make's own end, after the precompile, is reported beside it. Each line of make's output is
stamped with the seconds since the start, so the install, demo and precompile parts can be
read off.

Two cache conditions for uv's (and pip's) download cache, reported apart:
- `empty`: UV_CACHE_DIR and PIP_CACHE_DIR point into the temp directory (every wheel is
  downloaded from the package registry);
- `usual`: the user's own caches as they are (the wheels may already be there).

    .venv/bin/python bench/bench_fresh.py --rounds 1 --caches empty,usual
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fresh_demo(cache: str, verbose: bool) -> tuple[float, float, list[str]]:
    """Seconds from `git clone` to report.html and to make's end, and make's output lines
    stamped."""
    with tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
        env["XDG_CACHE_HOME"] = str(root / "xdg")  # momentumbot's compiled code: empty
        env.pop("VIRTUAL_ENV", None)
        if cache == "empty":
            env["UV_CACHE_DIR"] = str(root / "uv-cache")
            env["PIP_CACHE_DIR"] = str(root / "pip-cache")
        t0 = time.perf_counter()
        clone = root / "momentumbot"
        subprocess.run(
            ["git", "clone", "--quiet", str(REPO), str(clone)], check=True, env=env
        )  # fmt: skip
        lines: list[str] = []
        to_report = float("nan")
        proc = subprocess.Popen(
            ["make", "demo"], cwd=clone, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - t0
            if line.startswith("report: ") and (clone / "runs" / "demo" / "report.html").is_file():
                to_report = now
            stamped = f"{now:6.1f} s  {line.rstrip()}"
            lines.append(stamped)
            if verbose:
                print(stamped, flush=True)
        if proc.wait() != 0:
            sys.exit("make demo failed:\n" + "\n".join(lines[-30:]))
        seconds = time.perf_counter() - t0
        report = clone / "runs" / "demo" / "report.html"
        if not report.is_file():
            sys.exit(f"no {report} after make demo")
        return to_report, seconds, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--caches", default="empty,usual", help="empty, usual or both (comma)")
    ap.add_argument("--verbose", action="store_true", help="print make's lines as they come")
    args = ap.parse_args()
    caches = [c.strip() for c in args.caches.split(",") if c.strip()]
    times: dict[str, list[float]] = {c: [] for c in caches}
    for r in range(args.rounds):
        for cache in caches:
            load = os.getloadavg()
            to_report, seconds, lines = fresh_demo(cache, args.verbose)
            times[cache].append(to_report)
            print(
                f"round {r} download cache {cache:>5}: {to_report:.1f} s to report.html, "
                f"make demo done in {seconds:.1f} s (load average {load[0]:.1f} at the start)",
                flush=True,
            )
            for line in lines:
                if any(w in line for w in ("install", "compil", "report:", "run folder")):
                    print("    " + line)
    for cache in caches:
        print(
            f"download cache {cache:>5}: median {statistics.median(times[cache]):.1f} s "
            "to report.html"
        )


if __name__ == "__main__":
    main()

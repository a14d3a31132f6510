"""Benchmark of the report: time to write plots/ and report.html, their size, and the time
headless Chromium takes to open report.html and draw every chart (network blocked).

Run: .venv/bin/python bench/bench_report.py [--cases 10x20,100x250] [--dense] [--workdir DIR]
Each case generates synthetic bars, backtests them (default config; --dense adds the
100x250 case with a config that trades ~30k round trips), then times:
  cold    `momentumbot report RUN` in a fresh process (imports, numba cache load included)
  warm    write_report(RUN) again in this process (as at the end of a backtest)
  html    write_report(RUN, symbol_plots=False): no plots/symbols/*.png
Figures are printed, never asserted (targets for 100x250: under 5 s, under 20 MB).

With --before SRC (an older checkout's src/), each case also times `momentumbot report RUN`
in fresh processes, that checkout and this one alternately (--rounds times each), and prints
both medians: the same run folder, so the same content drawn.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from momentumbot.cli import main as cli_main
from momentumbot.reporting.report import write_report

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _quiet(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(argv)
    if code != 0:
        raise SystemExit(f"momentumbot {' '.join(argv)} failed with {code}")


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _browser_seconds(report: Path) -> tuple[float, float] | None:
    """(open until every chart is drawn, switch to another symbol), or None without a browser."""
    executable = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if executable is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.route(
            "**/*",
            lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort(),
        )
        t0 = time.perf_counter()
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        opened = time.perf_counter() - t0
        options = page.eval_on_selector_all("#symbol-select option", "e => e.map(o => o.value)")
        switch = 0.0
        if len(options) > 1:
            t0 = time.perf_counter()
            page.select_option("#symbol-select", options[-1])
            page.wait_for_function(
                f"document.getElementById('symbol-info').textContent.startsWith('{options[-1]}')"
            )
            switch = time.perf_counter() - t0
        browser.close()
    return opened, switch


DENSE_CONFIG = """[strategy]
step = 0.3
buffer = 0.1
[execution]
max_commission_bps = 100.0
[allocation]
top_k = 10
"""


def run_case(
    workdir: Path, n_symbols: int, n_sessions: int, dense: bool = False
) -> dict[str, float | int | str]:
    store = workdir / f"store_{n_symbols}x{n_sessions}"
    run = workdir / f"run_{n_symbols}x{n_sessions}{'_dense' if dense else ''}"
    extra: list[str] = []
    if dense:
        config = workdir / "dense.toml"
        config.write_text(DENSE_CONFIG, encoding="utf-8")
        extra = ["--config", str(config)]
    if not store.is_dir():
        _quiet(
            ["data", "generate", "--symbols", str(n_symbols), "--sessions", str(n_sessions),
             "--store", str(store)]
        )  # fmt: skip
    if not (run / "summary.json").is_file():
        _quiet(["backtest", "--store", str(store), "--symbols", "all", "--out", str(run), *extra])

    t0 = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).with_name("momentumbot")), "report", str(run)],
        check=True,
        capture_output=True,
    )
    cold = time.perf_counter() - t0
    write_report(run)  # once to warm this process's imports and caches
    t0 = time.perf_counter()
    write_report(run, symbol_plots=False)
    html_only = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = write_report(run)
    warm = time.perf_counter() - t0
    pngs = list((run / "plots").rglob("*.png"))
    browser = _browser_seconds(report)
    return {
        "case": f"{n_symbols} symbols x {n_sessions} sessions{' dense' if dense else ''}",
        "fills": sum(1 for _ in (run / "fills.csv").open()) - 1,
        "cold_s": cold,
        "warm_s": warm,
        "html_only_s": html_only,
        "html_mb": report.stat().st_size / 1e6,
        "plots_mb": _folder_bytes(run / "plots") / 1e6,
        "pngs": len(pngs),
        "browser_open_s": browser[0] if browser else float("nan"),
        "browser_switch_s": browser[1] if browser else float("nan"),
    }


def _report_seconds(run: Path, src: Path | None, worker: str | None = None) -> float:
    """`momentumbot report RUN` in a fresh process (``src``: an older checkout's src/;
    ``worker``: MOMENTUMBOT_CHART_WORKER for it)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if worker is not None:
        env["MOMENTUMBOT_CHART_WORKER"] = worker
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "momentumbot", "report", str(run)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - t0


def before_after(
    workdir: Path, n_symbols: int, n_sessions: int, src: Path, rounds: int, worker: str
) -> None:
    run = workdir / f"run_{n_symbols}x{n_sessions}"
    variants: dict[str, tuple[Path | None, str | None]] = {"before": (src, None)}
    if worker == "both":
        variants["after, worker"] = (None, "1")
        variants["after, no worker"] = (None, "0")
    else:
        variants["after"] = (None, {"on": "1", "off": "0"}.get(worker))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (source, flag) in variants.items():
            times[name].append(_report_seconds(run, source, flag))
    load = os.getloadavg()[0]
    print(
        f"{n_symbols}x{n_sessions} report, fresh process, median of {rounds}: "
        + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in times.items())
        + f" (each: {times}; load average {load:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cases", default="10x20,100x250", help="SYMBOLSxSESSIONS, comma-separated"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep stores and runs here (default: a temp dir)"
    )
    parser.add_argument("--dense", action="store_true", help="also a 100x250 run with ~30k trips")
    parser.add_argument("--before", type=Path, help="an older checkout's src/ to time alongside")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --before timings")
    parser.add_argument(
        "--chart-worker",
        choices=("auto", "on", "off", "both"),
        default="auto",
        help="with --before: this checkout's chart worker (MOMENTUMBOT_CHART_WORKER); "
        "auto: when a core is free; both: on and off, alternated",
    )
    args = parser.parse_args()
    cases = [tuple(int(v) for v in c.split("x")) for c in args.cases.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [run_case(workdir, s, n) for s, n in cases]
        if args.before:
            for s, n in cases:
                before_after(workdir, s, n, args.before, args.rounds, args.chart_worker)
        if args.dense:
            rows.append(run_case(workdir, 100, 250, dense=True))
    print(f"report benchmark ({os.cpu_count()} cores)")
    header = (
        f"{'case':<34} {'fills':>7} {'cold s':>7} {'warm s':>7} {'html s':>7} {'html MB':>8} "
        f"{'plots MB':>9} {'PNGs':>5} {'open s':>7} {'switch s':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['case']:<34} {r['fills']:>7} {r['cold_s']:>7.2f} {r['warm_s']:>7.2f} "
            f"{r['html_only_s']:>7.2f} "
            f"{r['html_mb']:>8.2f} {r['plots_mb']:>9.2f} {r['pngs']:>5} "
            f"{r['browser_open_s']:>7.2f} {r['browser_switch_s']:>9.2f}"
        )
    print(
        "cold: `momentumbot report RUN` in a fresh process; warm: write_report() again in "
        "the same process; html: the same without plots/symbols/*.png; open: headless "
        "Chromium until every chart is drawn (network blocked); switch: redraw the price "
        "chart for another symbol."
    )


if __name__ == "__main__":
    main()

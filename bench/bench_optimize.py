"""Sweep throughput: backtests per second over a 100-point grid (step x buffer x
rebalance_minutes = 5 x 5 x 4) of 10 synthetic symbols x 60 sessions, run three ways:
one process, the local pool of 2 processes, and a 2-worker Dask LocalCluster on loopback
(started before the clock, as an existing cluster would be).

For each: the sweep's wall time from the call to the last result (plan, runner start,
bar loading, shipping the job, the runs), the sum of the backtests' own run times
(fast-path run + figures, as recorded in results.csv), backtests per second, and the
stages. Then one run taken apart in this process: minute loop, tables, figures. Targets
(issue 7): one process within 1.2x of the sum of run times; 2 workers at least 1.7x
faster than one.

    .venv/bin/python bench/bench_optimize.py                 # all three modes
    .venv/bin/python bench/bench_optimize.py --modes one,pool --symbols 10 --sessions 60
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"
GRID = ["step=0.5:2.5:0.5", "buffer=0.1:0.5:0.1", "rebalance_minutes=1,5,15,30"]


def ensure_store(root: Path, n_sym: int, n_sessions: int) -> tuple[Path, list[str]]:
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols, write_synthetic

    store = root / f"store_{n_sym}x{n_sessions}"
    names = default_symbols(n_sym)
    bars = BarStore(store)
    if not all(bars.has(s) for s in names):
        write_synthetic(bars, names, start="2023-01-03", n_sessions=n_sessions + 2, seed=7)
    return store, names


def sweep_once(
    store: Path, symbols: list[str], span: tuple[str, str], out: Path, **runner: Any
) -> dict[str, Any]:
    import pandas as pd

    from momentumbot.config.schema import AppConfig
    from momentumbot.optimize.space import parse_params
    from momentumbot.optimize.sweep import SweepSpec, run_sweep

    shutil.rmtree(out, ignore_errors=True)
    spec = SweepSpec(
        base=AppConfig(),
        store=store,
        symbols=symbols,
        start=span[0],
        end=span[1],
        specs=parse_params(GRID),
        out=out,
        report=False,
        **runner,
    )
    outcome = run_sweep(spec)
    table = pd.read_csv(out / "results.csv")
    t = outcome.timings
    to_last_result = sum(t.get(k, 0.0) for k in ("plan", "runs"))
    run_sum = float(table["run_seconds"].sum())
    return {
        "runner": outcome.runner,
        "runs": int(len(table)),
        "wall_to_last_result": round(to_last_result, 3),
        "wall_with_outputs": round(outcome.seconds, 3),
        "sum_of_run_times": round(run_sum, 3),
        "mean_run_time": round(run_sum / max(len(table), 1), 4),
        "wall_over_sum": round(to_last_result / run_sum, 3),
        "backtests_per_second": round(len(table) / to_last_result, 2),
        "stages": {k: round(v, 3) for k, v in t.items()},
        "_table": table,
    }


def run_mode(
    mode: str, store: Path, symbols: list[str], span: tuple[str, str], root: Path
) -> dict[str, Any]:
    out = root / f"sweep_{mode}"
    if mode == "one":
        return sweep_once(store, symbols, span, out, workers=1)
    if mode == "pool":
        return sweep_once(store, symbols, span, out, workers=2)
    if mode == "dask":
        from distributed import LocalCluster

        with LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster:
            # the cluster is up before the clock starts, as an existing cluster would be
            return sweep_once(store, symbols, span, out, scheduler=cluster.scheduler_address)
    raise SystemExit(f"unknown mode {mode}")


def one_run_apart(store: Path, symbols: list[str], span: tuple[str, str]) -> dict[str, float]:
    """Where a single fast-path backtest spends its time (median of 10)."""
    import statistics

    from momentumbot.config.schema import AppConfig
    from momentumbot.data.store import BarStore
    from momentumbot.engine import backtest as bt
    from momentumbot.optimize.fast import SweepData, Window
    from momentumbot.reporting.metrics import compute_figures, daily_returns

    window = Window(*span)
    t0 = time.perf_counter()
    data = SweepData.load(BarStore(store), symbols, [window], [390])
    load = time.perf_counter() - t0
    cfg = AppConfig.model_validate({"symbols": symbols})
    data.figures(cfg, window)
    rows: dict[str, list[float]] = {"loop_and_tables": [], "figures": [], "daily_returns": []}
    collect: list[float] = []
    original = bt._collect

    def timed_collect(*args: Any) -> Any:
        t = time.perf_counter()
        out = original(*args)
        collect.append(time.perf_counter() - t)
        return out

    import momentumbot.optimize.fast as fast

    fast._collect = timed_collect  # type: ignore[assignment]
    try:
        for _ in range(10):
            t = time.perf_counter()
            r = data.run(cfg, window)
            t1 = time.perf_counter()
            compute_figures(r.equity, r.fills, start_equity=r.initial_cash)
            t2 = time.perf_counter()
            daily_returns(r.equity, start_equity=r.initial_cash)
            t3 = time.perf_counter()
            rows["loop_and_tables"].append(t1 - t)
            rows["figures"].append(t2 - t1)
            rows["daily_returns"].append(t3 - t2)
    finally:
        fast._collect = original  # type: ignore[assignment]
    med = {k: statistics.median(v) for k, v in rows.items()}
    tables = statistics.median(collect)
    t0 = time.perf_counter()
    bt.run_backtest(cfg, BarStore(store), start=span[0], end=span[1])
    full = time.perf_counter() - t0
    return {
        "load_once": round(load, 4),
        "minute_loop": round(med["loop_and_tables"] - tables, 4),
        "tables": round(tables, 4),
        "figures": round(med["figures"], 4),
        "daily_returns": round(med["daily_returns"], 4),
        "run_backtest_from_the_store": round(full, 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--modes", default="one,pool,dask")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "mb_bench_optimize")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT / "optimize.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    store, symbols = ensure_store(args.root, args.symbols, args.sessions)
    from momentumbot.data.calendar import TradingCalendar

    sessions = TradingCalendar("XNYS").sessions("2023-01-03", None)[2 : 2 + args.sessions]
    span = (f"{sessions[0]:%Y-%m-%d}", f"{sessions[-1]:%Y-%m-%d}")
    if args.child:
        res = run_mode(args.child, store, symbols, span, args.root)
        res["_table"].to_csv(args.root / f"table_{args.child}.csv", index=False)
        res.pop("_table")
        print(json.dumps(res))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report: dict[str, Any] = {
        "size": f"{args.symbols} symbols x {args.sessions} sessions",
        "grid": GRID,
        "python": sys.version.split()[0],
    }
    import pandas as pd

    tables = {}
    for mode in modes:
        # each mode in a fresh interpreter, as a command would run (imports not counted:
        # the same for every mode)
        print(f"running {mode} ...", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--symbols", str(args.symbols),
             "--sessions", str(args.sessions), "--root", str(args.root)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        report[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        tables[mode] = pd.read_csv(args.root / f"table_{mode}.csv")
    if "one" in report:
        one = report["one"]["wall_to_last_result"]
        for mode in ("pool", "dask"):
            if mode in report:
                speed = one / report[mode]["wall_to_last_result"]
                report[mode]["speedup_over_one"] = round(speed, 2)
                report[mode]["scaling_efficiency"] = round(speed / 2, 2)
        cols = [c for c in tables["one"].columns if c not in ("run_seconds", "worker")]
        for mode, table in tables.items():
            same = (
                table[cols].sort_values("key").reset_index(drop=True)
                .equals(tables["one"][cols].sort_values("key").reset_index(drop=True))
            )  # fmt: skip
            report.setdefault("identical_to_one_process", {})[mode] = bool(same)
    report["one_run"] = one_run_apart(store, symbols, span)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

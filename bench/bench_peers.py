"""momentumbot side by side with the peers, on the peers' own synthetic bars, in one run.

Uses ../shared/peers-bench: its generator makes the bars (10 symbols x 250 days by
default), they are imported into a momentumbot store, then each contender runs in turn,
interleaved (A B C A B C ...) because this machine's speed drifts by tens of percent
within minutes. Ratios measured in one run are the figures to quote, not the seconds.

The peers run a simpler strategy (EMA cross + trailing stop, fills at the signal bar's
close); momentumbot runs its full strategy (band, shadow books, allocator every 5 minutes,
next-bar fills, volume caps, commissions), so the comparison is of engines doing at least
as much work per bar.

    .venv/bin/python bench/bench_peers.py                  # pure-Python loop and numba peers
    .venv/bin/python bench/bench_peers.py --peers-venv /path/to/.venv-peers --peers pure,vectorbt

With --whole, each contender is instead timed as a WHOLE PROCESS, from the data on disk to
the last file written (interpreter start, imports, compiled-code cache load, reading the
bars, the backtest, the run folder; momentumbot's report too where the case says so):
`momentumbot backtest --symbols all` on the imported store against vectorbt's
`run_peer.py --repeats 1` (its imports, Parquet load, warm-up slice, prep and one run) on
the same generated bars, rounds interleaved, after one untimed warm-up of each (so both
load their compiled code from their caches, as a user's second run does):

    .venv/bin/python bench/bench_peers.py --whole 10x250:report,100x250 \
        --peers-venv /tmp/peers-venv --rounds 5

--chart-worker on|off|both sets MOMENTUMBOT_CHART_WORKER for this checkout's processes (the
report's PNGs drawn in a second process; by default only when a core is free); `both` adds
"momentumbot, no worker" as a contender, alternated with the others.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "peers-bench"


def import_peer_data(data_dir: Path, store_dir: Path) -> list[str]:
    """The peers' Parquet files (naive New York open-labelled bars) into a bar store."""
    import pandas as pd

    from momentumbot.data.store import BarStore

    store = BarStore(store_dir)
    symbols = []
    for path in sorted(data_dir.glob("*.parquet")):
        sym = path.stem
        symbols.append(sym)
        if store.has(sym):
            continue
        df = pd.read_parquet(path)
        ts = pd.DatetimeIndex(df["timestamp"]).tz_localize("America/New_York").tz_convert("UTC")
        store.write(
            sym,
            pd.DataFrame(
                {
                    "ts": ts.as_unit("ns"),
                    "open": df["open"].to_numpy(),
                    "high": df["high"].to_numpy(),
                    "low": df["low"].to_numpy(),
                    "close": df["close"].to_numpy(),
                    "volume": df["volume"].to_numpy().astype("int64"),
                }
            ),
            source=str(path),
        )
    return symbols


def run_ours(store: Path) -> dict[str, float]:
    cmd = [sys.executable, str(HERE / "bench_backtest.py"), "--child", str(store), "all", "100000"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_peer(python: str, peer: str, data_dir: Path, repeats: int) -> dict[str, float]:
    out_json = data_dir.parent / f"peer_{peer}.json"
    cmd = [python, str(PEERS / "run_peer.py"), "--peer", peer, "--data", str(data_dir),
           "--repeats", str(repeats), "--json", str(out_json)]  # fmt: skip
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out_json.read_text())


def ensure_peer_data(out: Path, symbols: int, days: int) -> tuple[Path, Path]:
    """The peers' generated bars (seed 42) and the momentumbot store imported from them."""
    data_dir = out / f"s{symbols}_d{days}"
    if not data_dir.is_dir():
        subprocess.run(
            [sys.executable, str(PEERS / "gen_data.py"), "--symbols", str(symbols),
             "--days", str(days), "--seed", "42", "--out", str(data_dir)],
            check=True,
        )  # fmt: skip
    store_dir = out / f"store_s{symbols}_d{days}"
    import_peer_data(data_dir, store_dir)
    return data_dir, store_dir


def _timed(
    cmd: list[str], src: Path | None = None, env_extra: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all its threads) of one fresh process, which
    must succeed (``src``: an older checkout's src/ to run instead of this one). On a
    shared machine the CPU seconds move far less than the wall seconds."""
    env = dict(os.environ)
    # both sides keep their bytecode caches, as on a user's machine (a venv that
    # has none pays for compiling every module's source in every process)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    env.update(env_extra or {})
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    cpu = now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime
    return seconds, cpu


def whole_process(args: argparse.Namespace, peer_python: str) -> None:
    """Fresh processes, data on disk to last file written, momentumbot vs vectorbt."""
    rows = []
    for case in args.whole.split(","):
        size, _, flag = case.partition(":")
        symbols, days = (int(x) for x in size.split("x"))
        report = flag == "report"
        data_dir, store_dir = ensure_peer_data(args.out, symbols, days)
        config = args.out / f"whole_{symbols}.toml"
        # 10,000 USD a symbol, as bench_backtest.py and the in-process comparison above
        config.write_text(f"[portfolio]\ninitial_cash = {10_000 * symbols}\n", encoding="utf-8")
        run_dir = args.out / f"whole_run_{symbols}"
        ours = [sys.executable, "-m", "momentumbot", "backtest", "--config", str(config),
                "--store", str(store_dir), "--symbols", "all", "--out", str(run_dir),
                "--report" if report else "--no-report"]  # fmt: skip
        theirs = [peer_python, str(PEERS / "run_peer.py"), "--peer", "vectorbt", "--data",
                  str(data_dir), "--repeats", "1", "--json", str(args.out / "whole_vbt.json")]  # fmt: skip
        worker = {"on": "1", "off": "0", "both": "1"}.get(args.chart_worker)
        mine = {} if worker is None else {"MOMENTUMBOT_CHART_WORKER": worker}
        contenders: dict[str, tuple[list[str], Path | None, dict[str, str]]] = {
            "momentumbot": (ours, None, mine),
            "vectorbt": (theirs, None, {}),
        }
        if args.chart_worker == "both":
            alone = [*ours[:-2], str(args.out / f"whole_run_{symbols}_alone"), ours[-1]]
            contenders["momentumbot, no worker"] = (alone, None, {"MOMENTUMBOT_CHART_WORKER": "0"})
        if args.before:
            before = [*ours[:-2], str(args.out / f"whole_run_{symbols}_before"), ours[-1]]
            contenders["momentumbot before"] = (before, args.before, {})
        for cmd, src, extra in contenders.values():  # warm-up: compiled-code caches, files
            _timed(cmd, src, extra)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        cpus: dict[str, list[float]] = {name: [] for name in contenders}
        loads = [os.getloadavg()[0]]
        for _ in range(args.rounds):
            for name, (cmd, src, extra) in contenders.items():
                wall, cpu = _timed(cmd, src, extra)
                times[name].append(wall)
                cpus[name].append(cpu)
            loads.append(os.getloadavg()[0])
            print(
                f"  {case}: "
                + ", ".join(
                    f"{name} {times[name][-1]:.2f} s (CPU {cpus[name][-1]:.2f} s)"
                    for name in contenders
                )
                + f" (load {loads[-1]:.1f})",
                flush=True,
            )
        medians = {name: statistics.median(t) for name, t in times.items()}
        cpu_medians = {name: statistics.median(t) for name, t in cpus.items()}
        row = {
            "case": case, "symbols": symbols, "days": days, "report": report,
            "seconds": times, "cpu_seconds": cpus, "medians_s": medians,
            "cpu_medians_s": cpu_medians,
            "ratio": medians["momentumbot"] / medians["vectorbt"],
            "cpu_ratio": cpu_medians["momentumbot"] / cpu_medians["vectorbt"],
            "load_average": [min(loads), max(loads)],
        }  # fmt: skip
        rows.append(row)
        print(
            f"{case}: "
            + ", ".join(
                f"{name} {medians[name]:.2f} s (CPU {cpu_medians[name]:.2f} s)"
                for name in contenders
            )
            + f" (medians of {args.rounds}), momentumbot / vectorbt {row['ratio']:.2f} "
            f"(CPU {row['cpu_ratio']:.2f}), load average {min(loads):.1f}-{max(loads):.1f}",
            flush=True,
        )
    (args.out / "bench_peers_whole.json").write_text(json.dumps(rows, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--days", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default="pure,numba")
    ap.add_argument(
        "--peers-venv", type=Path, help="venv with the peers' libraries (requirements-peers.txt)"
    )
    ap.add_argument("--out", type=Path, default=HERE / "out" / "peers")
    ap.add_argument(
        "--whole",
        help="whole-process cases against vectorbt, e.g. 10x250:report,100x250 "
        "(SYMBOLSxDAYS, ':report' to include momentumbot's report)",
    )
    ap.add_argument("--before", type=Path, help="with --whole: also time an older checkout's src/")
    ap.add_argument(
        "--chart-worker",
        choices=("auto", "on", "off", "both"),
        default="auto",
        help="with --whole: the report's chart worker (MOMENTUMBOT_CHART_WORKER) for this "
        "checkout; auto: when a core is free; both: on, and off as another contender",
    )
    args = ap.parse_args()
    if not PEERS.is_dir():
        sys.exit(f"{PEERS} not found: this benchmark needs ../shared/peers-bench beside the repo")
    args.out.mkdir(parents=True, exist_ok=True)
    peer_python = str(args.peers_venv / "bin" / "python") if args.peers_venv else sys.executable
    if args.whole:
        whole_process(args, peer_python)
        return
    data_dir, store_dir = ensure_peer_data(args.out, args.symbols, args.days)
    results: dict[str, list[float]] = {"momentumbot": []}
    bars: dict[str, float] = {}
    for _ in range(args.rounds):
        r = run_ours(store_dir)
        # like the peers' `run`: the backtest itself, with the data already loaded
        results["momentumbot"].append(r["kernel_s"] + r["collect_s"])
        bars["momentumbot"] = r["bars"]
        for peer in args.peers.split(","):
            p = run_peer(peer_python, peer, data_dir, 1)
            results.setdefault(peer, []).append(float(p["run_median_s"]))
            bars[peer] = float(p["bars"])
    print(f"{'engine':<14}{'run s (median)':>16}{'bars':>12}{'bars/s':>14}{'x pure':>9}")
    pure = statistics.median(results["pure"]) if "pure" in results else None
    for name, times in results.items():
        med = statistics.median(times)
        ratio = f"{med / pure:.3f}" if pure else "-"
        print(f"{name:<14}{med:>16.4f}{bars[name]:>12,.0f}{bars[name] / med:>14,.0f}{ratio:>9}")
    (args.out / "bench_peers.json").write_text(
        json.dumps({"times": results, "bars": bars}, indent=2)
    )


if __name__ == "__main__":
    main()

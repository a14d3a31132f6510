"""Benchmark of the bar store: generate, write, size on disk, load as arrays, import a CSV.

Run: .venv/bin/python bench/bench_store.py [--symbols 100] [--sessions 250]
Figures are printed, never asserted (targets: load 9.75M bars in under 1.5 s).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.importers import import_files
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, generate_bars, synthetic_sessions
from momentumbot.domain.units import EXCHANGE_TZ


def _av_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write bars as Alpha Vantage publishes them: end labels, naive New York time, newest first."""
    local = (frame["ts"] + pd.Timedelta(minutes=1)).dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None)
    out = pd.DataFrame(
        {
            "timestamp": local.dt.strftime("%Y-%m-%d %H:%M:%S"),
            **{k: frame[k] for k in ("open", "high", "low", "close", "volume")},
        }
    ).iloc[::-1]
    with gzip.open(path, "wt", compresslevel=6) as fh:
        out.to_csv(fh, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=250)
    parser.add_argument("--start", default="2024-01-02")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the load timing")
    args = parser.parse_args()

    cal = TradingCalendar("XNYS")
    sessions = synthetic_sessions(args.start, args.sessions, cal)
    symbols = default_symbols(args.symbols)
    rows: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        store = BarStore(Path(tmp) / "store")

        t0 = time.perf_counter()
        frames = generate_bars(symbols, sessions, seed=7, calendar=cal)
        t_gen = time.perf_counter() - t0
        n_bars = sum(len(f) for f in frames.values())

        t0 = time.perf_counter()
        for sym, frame in frames.items():
            store.write(sym, frame, source="bench")
        t_write = time.perf_counter() - t0
        av_source = frames[symbols[0]]
        del frames
        gc.collect()

        size = sum(p.stat().st_size for p in store.bars_dir.glob("*.parquet"))
        start_ns = int(cal.grid(sessions[:1]).open_ns[0])
        end_ns = int(cal.grid(sessions[-1:]).close_ns[0])

        best_load = np.inf
        loaded = 0
        for _ in range(args.repeat):
            fresh = BarStore(store.root)  # no metadata cache: a cold start of a backtest
            t0 = time.perf_counter()
            loaded = 0
            for sym in symbols:
                loaded += len(fresh.read_arrays(sym, start_ns, end_ns).ts)
            best_load = min(best_load, time.perf_counter() - t0)

        # one 20-session window for every symbol: what a streaming backtest reads per chunk
        chunk = sessions[len(sessions) // 2 : len(sessions) // 2 + 20]
        grid = cal.grid(chunk)
        w0, w1 = int(grid.open_ns[0]), int(grid.close_ns[-1])
        t0 = time.perf_counter()
        window_bars = sum(len(store.read_arrays(sym, w0, w1).ts) for sym in symbols)
        t_window = time.perf_counter() - t0

        # the whole range streamed in 20-session chunks, as a memory-bounded backtest reads it
        t0 = time.perf_counter()
        streamed = 0
        for first in range(0, len(sessions), 20):
            g = cal.grid(sessions[first : first + 20])
            c0, c1 = int(g.open_ns[0]), int(g.close_ns[-1])
            streamed += sum(len(store.read_arrays(sym, c0, c1).ts) for sym in symbols)
        t_stream = time.perf_counter() - t0

        av_path = Path(tmp) / f"{symbols[0]}_1min.csv.gz"
        _av_csv(av_source, av_path)
        import_store = BarStore(Path(tmp) / "import")
        t0 = time.perf_counter()
        results = import_files(import_store, [av_path], fmt="alphavantage", calendar=cal)
        t_import = time.perf_counter() - t0
        imported = results[0].added

    rows += [
        ("bars", f"{n_bars:,} ({args.symbols} symbols x {args.sessions} sessions)"),
        ("generate", f"{t_gen:.2f} s ({n_bars / t_gen / 1e6:.1f} M bars/s)"),
        ("write (validate + Parquet)", f"{t_write:.2f} s ({n_bars / t_write / 1e6:.1f} M bars/s)"),
        ("size on disk", f"{size / 1e6:.1f} MB ({size / 1e6 / (n_bars / 1e6):.1f} MB per million bars)"),
        ("load all as arrays", f"{best_load:.2f} s for {loaded:,} bars (best of {args.repeat}; target < 1.5 s)"),
        ("load a 20-session window", f"{t_window * 1e3:.0f} ms for {window_bars:,} bars, all symbols"),
        ("stream all in 20-session chunks", f"{t_stream:.2f} s for {streamed:,} bars"),
        ("import Alpha Vantage CSV.gz", f"{t_import:.2f} s for {imported:,} bars ({imported / t_import / 1e3:.0f} k bars/s)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"bench_store ({time.strftime('%Y-%m-%d')}, {pd.__name__} {pd.__version__})")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()

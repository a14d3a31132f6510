"""Import speed (bars per second) from provider CSV into the store, and store size per million bars.

Three measurements:
  real      the provider's own 1-minute files in ../shared/data/eqker_alphavantage_2019-02
            (24 symbols, one week), imported in one `import_files` call;
  months    SYNTHETIC bars written in the provider's format (end labels, naive New York time,
            newest first), one file per symbol-month as `data fetch` receives them, imported
            month by month (each import merges into a growing file, as a fetch does);
  fetch     the same month files served by a local HTTP server and pulled by
            AlphaVantageFetcher (HTTP, answer checks, parse, validate, merge, manifest): what
            `data fetch --source alphavantage` costs on top of the network and the rate limit.

Run: .venv/bin/python bench/bench_import.py [--symbols 20] [--months 12]
Figures are printed (and written to bench/out/bench_import.json), never asserted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from momentumbot.data.alphavantage import AlphaVantageFetcher, AlphaVantageSettings
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.importers import import_files
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, generate_bars
from momentumbot.domain.units import EXCHANGE_TZ

HERE = Path(__file__).resolve().parent
SHARED_AV = HERE.parent / ".." / "shared" / "data" / "eqker_alphavantage_2019-02"


def av_body(frame: pd.DataFrame) -> bytes:
    """Bars as the provider publishes them: end labels, naive New York time, newest first."""
    local = (frame["ts"] + pd.Timedelta(minutes=1)).dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None)
    out = pd.DataFrame(
        {
            "timestamp": local.dt.strftime("%Y-%m-%d %H:%M:%S"),
            **{k: frame[k] for k in ("open", "high", "low", "close", "volume")},
        }
    ).iloc[::-1]
    return out.to_csv(index=False, lineterminator="\r\n").encode()


def store_size(store: BarStore) -> int:
    return sum(p.stat().st_size for p in store.bars_dir.glob("*.parquet"))


def per_million(size: int, bars: int) -> str:
    return f"{size / 1e6 / (bars / 1e6):.2f} MB per million bars"


def bench_real(tmp: Path) -> dict[str, float]:
    files = sorted(SHARED_AV.resolve().glob("*_1min.csv.gz"))
    if not files:
        return {}
    store = BarStore(tmp / "real")
    t0 = time.perf_counter()
    results = import_files(store, files, fmt="alphavantage")
    elapsed = time.perf_counter() - t0
    bars = sum(r.added for r in results)
    size = store_size(store)
    return {"files": len(files), "bars": bars, "seconds": elapsed, "size_bytes": size}


def month_bodies(
    symbols: list[str], months: int, cal: TradingCalendar
) -> dict[tuple[str, str], bytes]:
    first = pd.Period("2023-01", freq="M")
    periods = [first + i for i in range(months)]
    sessions = cal.sessions(periods[0].start_time.date(), periods[-1].end_time.date())
    frames = generate_bars(symbols, sessions, seed=7, calendar=cal)
    bodies = {}
    for sym, frame in frames.items():
        ny_month = frame["ts"].dt.tz_convert(EXCHANGE_TZ).dt.strftime("%Y-%m")
        for p in periods:
            bodies[(sym, str(p))] = av_body(frame.loc[ny_month == str(p)])
    return bodies


def bench_months(
    tmp: Path, bodies: dict[tuple[str, str], bytes], cal: TradingCalendar
) -> dict[str, float]:
    folder = tmp / "files"
    folder.mkdir()
    paths = []
    for (sym, month), body in bodies.items():
        path = folder / f"{sym}_{month}.csv.gz"
        path.write_bytes(gzip.compress(body, 6))
        paths.append((sym, path))
    store = BarStore(tmp / "months")
    t0 = time.perf_counter()
    bars = 0
    for sym, path in paths:  # one import per month file, merging into the symbol's file
        bars += import_files(store, [path], fmt="alphavantage", symbol=sym, calendar=cal)[0].added
    elapsed = time.perf_counter() - t0
    return {"files": len(paths), "bars": bars, "seconds": elapsed, "size_bytes": store_size(store)}


def bench_fetch(
    tmp: Path, bodies: dict[tuple[str, str], bytes], cal: TradingCalendar
) -> dict[str, float]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            q = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
            body = bodies[(q["symbol"], q["month"])]
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        settings = AlphaVantageSettings(
            api_key="bench", base_url=f"http://{host!s}:{port}/query", requests_per_minute=1e9
        )
        store = BarStore(tmp / "fetch")
        symbols = sorted({s for s, _ in bodies})
        months = sorted({m for _, m in bodies})
        t0 = time.perf_counter()
        report = AlphaVantageFetcher(settings, store, calendar=cal).fetch(symbols, months)
        elapsed = time.perf_counter() - t0
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    bars = sum(r.added for r in report.fetched)
    return {
        "requests": report.requests,
        "bars": bars,
        "seconds": elapsed,
        "size_bytes": store_size(store),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    cal = TradingCalendar("XNYS")
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp_name:
        tmp = Path(tmp_name)
        out["real"] = bench_real(tmp)
        bodies = month_bodies(default_symbols(args.symbols), args.months, cal)
        out["months"] = bench_months(tmp, bodies, cal)
        out["fetch"] = bench_fetch(tmp, bodies, cal)
    print(f"bench_import ({time.strftime('%Y-%m-%d')}, pandas {pd.__version__})")
    labels = {
        "real": "provider files, 2019-02 (real)",
        "months": f"month files, {args.symbols} sym x {args.months} months (synthetic)",
        "fetch": "fetch from a local server (same months)",
    }
    for key, r in out.items():
        if not r:
            print(f"  {labels[key]}: skipped (no {SHARED_AV})")
            continue
        rate = r["bars"] / r["seconds"]
        print(
            f"  {labels[key]:<52} {r['bars']:>10,.0f} bars in {r['seconds']:6.2f} s = "
            f"{rate / 1e3:7.0f} k bars/s; store {r['size_bytes'] / 1e6:6.2f} MB = "
            f"{per_million(int(r['size_bytes']), int(r['bars']))}"
        )
    target = HERE / "out" / "bench_import.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

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
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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
    args = ap.parse_args()
    if not PEERS.is_dir():
        sys.exit(f"{PEERS} not found: this benchmark needs ../shared/peers-bench beside the repo")
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = args.out / f"s{args.symbols}_d{args.days}"
    if not data_dir.is_dir():
        subprocess.run(
            [sys.executable, str(PEERS / "gen_data.py"), "--symbols", str(args.symbols),
             "--days", str(args.days), "--seed", "42", "--out", str(data_dir)],
            check=True,
        )  # fmt: skip
    store_dir = args.out / f"store_s{args.symbols}_d{args.days}"
    import_peer_data(data_dir, store_dir)
    peer_python = str(args.peers_venv / "bin" / "python") if args.peers_venv else sys.executable
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

"""A backtest whose compiled code is built on the spot (empty cache, a fresh process) and one
that loads it from the cache write the same run folder: compiling never changes a result. And
`momentumbot precompile` (run by `make install`) leaves nothing for the backtest to compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic

TIMING = {"engine_seconds"}  # the only figure allowed to differ


@pytest.mark.slow
def test_a_cold_and_a_warm_backtest_write_the_same_run_folder(tmp_path: Path) -> None:
    symbols = default_symbols(6)
    write_synthetic(BarStore(tmp_path / "store"), symbols, start="2024-01-02", n_sessions=5, seed=7)

    def momentumbot(cache: Path, *args: str) -> None:
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
        env.pop("NUMBA_CACHE_DIR", None)
        subprocess.run(
            [sys.executable, "-m", "momentumbot", *args], env=env, cwd=tmp_path, check=True,
            capture_output=True, text=True,
        )  # fmt: skip

    def backtest(cache: Path, out: Path) -> Path:
        momentumbot(cache, "backtest", "--store", str(tmp_path / "store"), "--symbols",
                    ",".join(symbols), "--out", str(out), "--no-report")  # fmt: skip
        return out

    def cached(cache: Path) -> list[str]:
        return sorted(p.name for p in cache.rglob("*") if p.is_file())

    cold = backtest(tmp_path / "cache-a", tmp_path / "cold")
    assert cached(tmp_path / "cache-a"), "the cold run compiled into the empty cache"
    momentumbot(tmp_path / "cache-b", "precompile")
    compiled = cached(tmp_path / "cache-b")
    warm = backtest(tmp_path / "cache-b", tmp_path / "warm")
    assert cached(tmp_path / "cache-b") == compiled, "after precompile a backtest compiles nothing"

    files = sorted(p.name for p in cold.iterdir() if p.is_file() and p.name != "run.log")
    assert files == sorted(p.name for p in warm.iterdir() if p.is_file() and p.name != "run.log")
    assert {"orders.csv", "fills.csv", "equity.csv", "summary.json"} <= set(files)
    for name in files:
        a, b = (cold / name).read_bytes(), (warm / name).read_bytes()
        if name == "summary.json":
            sa, sb = json.loads(a), json.loads(b)
            for s in (sa, sb):
                for key in TIMING:
                    s["run"].pop(key)
            assert sa["run"].pop("store") == sb["run"].pop("store")
            assert sa == sb
        else:
            assert a == b, f"{name} differs between the cold and the warm run"

"""A backtest whose compiled code is built on the spot (empty cache, a fresh process), one
that loads it from the cache and one that runs the kernels as plain Python (a small run with
nothing cached, `app.first_run`) write the same run folder: compiling never changes a result.
And `momentumbot precompile` (run by `make install`) leaves nothing for the backtest to
compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic

TIMING = {"engine_seconds"}  # the only figure allowed to differ


@pytest.mark.slow
def test_a_cold_and_a_warm_backtest_write_the_same_run_folder(tmp_path: Path) -> None:
    symbols = default_symbols(6)
    write_synthetic(BarStore(tmp_path / "store"), symbols, start="2024-01-02", n_sessions=5, seed=7)

    def momentumbot(cache: Path, *args: str, jit: str = "auto") -> str:
        env = {**os.environ, "XDG_CACHE_HOME": str(cache), "MOMENTUMBOT_JIT": jit}
        env.pop("NUMBA_CACHE_DIR", None)
        return subprocess.run(
            [sys.executable, "-m", "momentumbot", *args], env=env, cwd=tmp_path, check=True,
            capture_output=True, text=True,
        ).stderr  # fmt: skip

    def backtest(cache: Path, out: Path, jit: str = "auto") -> tuple[Path, str]:
        said = momentumbot(cache, "backtest", "--store", str(tmp_path / "store"), "--symbols",
                           ",".join(symbols), "--out", str(out), "--no-report", jit=jit)  # fmt: skip
        return out, " ".join(said.split())

    def cached(cache: Path) -> list[str]:  # compiled code only (not the calendar's day file)
        return sorted(p.name for p in (cache / "momentumbot" / "numba").rglob("*") if p.is_file())

    cold, _ = backtest(tmp_path / "cache-a", tmp_path / "cold", jit="on")
    assert cached(tmp_path / "cache-a"), "the cold run compiled into the empty cache"
    plain, said = backtest(tmp_path / "cache-p", tmp_path / "plain")
    assert "goes uncompiled" in said, said
    assert not any(p.suffix == ".nbi" for p in (tmp_path / "cache-p").rglob("*")), (
        "a small run with nothing cached compiles nothing"
    )
    momentumbot(tmp_path / "cache-b", "precompile")
    compiled = cached(tmp_path / "cache-b")
    warm, said = backtest(tmp_path / "cache-b", tmp_path / "warm")
    assert "uncompiled" not in said, "with the cache filled the run is compiled"
    assert cached(tmp_path / "cache-b") == compiled, "after precompile a backtest compiles nothing"
    assert_same_run_folders(cold, warm)
    assert_same_run_folders(cold, plain)


def assert_same_run_folders(a_dir: Path, b_dir: Path) -> None:
    files = sorted(p.name for p in a_dir.iterdir() if p.is_file() and p.name != "run.log")
    assert files == sorted(p.name for p in b_dir.iterdir() if p.is_file() and p.name != "run.log")
    assert {"orders.csv", "fills.csv", "equity.csv", "summary.json"} <= set(files)
    for name in files:
        a, b = (a_dir / name).read_bytes(), (b_dir / name).read_bytes()
        if name == "summary.json":
            sa, sb = json.loads(a), json.loads(b)
            for s in (sa, sb):
                for key in TIMING:
                    s["run"].pop(key)
            assert sa["run"].pop("store") == sb["run"].pop("store")
            assert sa == sb
        else:
            assert a == b, f"{name} differs between {a_dir.name} and {b_dir.name}"


@pytest.mark.slow
def test_real_bars_give_the_same_run_folder_uncompiled(
    shared_market_data: Path, tmp_path: Path
) -> None:
    """Recorded Alpha Vantage minutes (24 symbols, a week, with their gaps and halts), with a
    config that turns on the daily loss limit and settled cash: the kernels as plain Python
    (MOMENTUMBOT_JIT=off) and compiled agree to the byte."""
    files = sorted(
        str(p) for p in (shared_market_data / "eqker_alphavantage_2019-02").glob("*_1min.csv.gz")
    )
    store = tmp_path / "store"
    assert main(["data", "import", *files, "--format", "alphavantage", "--store", str(store)]) == 0
    config = tmp_path / "cfg.toml"
    config.write_text(
        "[portfolio]\ninitial_cash = 25000\nsettlement = 'T+1'\n[risk]\nmax_daily_loss = 150\n"
    )
    args = ["backtest", "--config", str(config), "--store", str(store), "--symbols", "all",
            "--no-report"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "compiled")]) == 0
    env = {**os.environ, "MOMENTUMBOT_JIT": "off"}
    subprocess.run(
        [sys.executable, "-m", "momentumbot", *args, "--out", str(tmp_path / "plain")],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert len((tmp_path / "plain" / "fills.csv").read_text().splitlines()) > 20
    assert_same_run_folders(tmp_path / "compiled", tmp_path / "plain")

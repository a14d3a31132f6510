"""Compiling ahead on every core (`app.compile_ahead.compile_ahead`, which `backtest`, `demo` and
`precompile` call on an empty cache) compiles what a backtest runs, for the types it passes:
a backtest after it compiles nothing more, and a second call finds everything cached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic

AHEAD = "from momentumbot.app.compile_ahead import compile_ahead; print(compile_ahead())"


@pytest.mark.slow
def test_after_compiling_ahead_a_backtest_compiles_nothing(tmp_path: Path) -> None:
    symbols = default_symbols(3)
    write_synthetic(BarStore(tmp_path / "store"), symbols, start="2024-01-02", n_sessions=3, seed=3)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)

    def run(*args: str) -> str:
        res = subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, check=True, capture_output=True,
            text=True,
        )  # fmt: skip
        return res.stdout

    def cached() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "cache").rglob("*.nb*"))

    assert run("-c", AHEAD).strip() == "True", "an empty cache is compiled into"
    compiled = cached()
    assert any("run_minutes" in name for name in compiled), "the minute loop is cached"
    run("-m", "momentumbot", "backtest", "--store", str(tmp_path / "store"), "--symbols",
        ",".join(symbols), "--out", str(tmp_path / "run"))  # fmt: skip
    assert (tmp_path / "run" / "report.html").is_file()
    assert cached() == compiled, "the backtest and its report found everything in the cache"
    assert run("-c", AHEAD).strip() == "False", "a warm cache is left alone"

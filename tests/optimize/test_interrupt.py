"""An interrupted sweep (Ctrl-C, or a worker killed) finishes on rerun with every
parameter set recorded exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from tests.optimize.conftest import END, START

GRID = ["--param", "step=0.5:2.5:0.5", "--param", "buffer=0.1,0.2,0.3,0.4",
        "--param", "rebalance_minutes=1,5,30"]  # fmt: skip
SETS = 5 * 4 * 3


def _command(store: Path, symbols: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "momentumbot.cli", "optimize", "--store", str(store),
            "--symbols", ",".join(symbols), "--start", START, "--end", END, "--out", str(out),
            "--workers", "2", "--no-report", *GRID]  # fmt: skip


def _rows(out: Path) -> int:
    path = out / "results.csv"
    if not path.is_file():
        return 0
    return max(0, path.read_bytes().count(b"\n") - 1)


def _wait_for_rows(proc: subprocess.Popen[bytes], out: Path, n: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while _rows(out) < n:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.02)


def _check_complete(out: Path) -> None:
    table = pd.read_csv(out / "results.csv")
    assert len(table) == SETS
    assert table["key"].is_unique
    assert not table[["step", "buffer", "rebalance_minutes"]].duplicated().any()
    assert not (out / "failures.csv").exists()


@pytest.mark.slow
def test_sigint_then_rerun_completes_every_set_exactly_once(
    synthetic: tuple[Path, list[str]], tmp_path: Path
) -> None:
    store, symbols = synthetic
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(_command(store, symbols, out), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        try:
            _wait_for_rows(proc, out, 5)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode != 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    first = _rows(out)
    assert 5 <= first < SETS
    assert not any(p.name == "best.toml" for p in out.iterdir())
    done = subprocess.run(_command(store, symbols, out), env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert f"{SETS - first} runs".encode() in done.stdout
    _check_complete(out)


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_run(
    synthetic: tuple[Path, list[str]], tmp_path: Path
) -> None:
    store, symbols = synthetic
    out = tmp_path / "sweep"
    with subprocess.Popen(_command(store, symbols, out),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:  # fmt: skip
        try:
            _wait_for_rows(proc, out, 5)
            # the pool's workers: forked (the sweep's own command line) or spawned
            sweep = psutil.Process(proc.pid)
            workers = [
                p for p in sweep.children()
                if p.cmdline() == sweep.cmdline() or any("spawn_main" in a for a in p.cmdline())
            ]  # fmt: skip
            assert len(workers) == 2
            workers[0].kill()
            killed_at = _rows(out)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert killed_at < SETS, "the sweep finished before the kill: make the grid bigger"
    _check_complete(out)

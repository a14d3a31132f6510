"""Small backtest run folders for the report tests, made once per test session."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from momentumbot.cli import main

# 3 synthetic symbols over 5 sessions across a month end (so the monthly table shows);
# SYN003 is one of the generator's thin symbols: it lacks bars in many minutes.
START = "2024-01-29"
SESSIONS = 5
ONE_SESSION = "2024-01-31"


@dataclass(frozen=True)
class Runs:
    store: Path
    full: Path  # 5 sessions, trades, SYN003 with missing bars
    one_session: Path
    no_trades: Path
    no_store: Path  # a copy of `full` whose summary names a store that is gone


def _backtest(store: Path, out: Path, *extra: str) -> Path:
    code = main(["backtest", "--store", str(store), "--symbols", "all", "--out", str(out), *extra])
    assert code == 0, f"backtest into {out} failed with {code}"
    return out


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("report-runs")
    store = base / "store"
    generate = ["data", "generate", "--symbols", "3", "--sessions", str(SESSIONS)]
    assert main([*generate, "--start", START, "--store", str(store)]) == 0
    full = _backtest(store, base / "full")
    one = _backtest(store, base / "one", "--start", ONE_SESSION, "--end", ONE_SESSION)
    quiet = base / "quiet.toml"
    quiet.write_text("[strategy]\nstep = 50.0\nbuffer = 50.0\n", encoding="utf-8")
    none = _backtest(store, base / "none", "--config", str(quiet))
    gone = base / "gone"
    shutil.copytree(full, gone)
    summary = json.loads((gone / "summary.json").read_text(encoding="utf-8"))
    summary["run"]["store"] = str(base / "no-such-store")
    (gone / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return Runs(store=store, full=full, one_session=one, no_trades=none, no_store=gone)


@pytest.fixture(scope="session")
def reports(runs: Runs) -> Runs:
    """The same runs with plots/ and report.html written."""
    from momentumbot.reporting.report import write_report

    for run_dir in (runs.full, runs.one_session, runs.no_trades, runs.no_store):
        write_report(run_dir)
    return runs

"""The chart worker: the report's PNGs drawn in a second process are the same files, a
worker that fails leaves them to this process, and it starts only when it can help."""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from momentumbot.domain import machine
from momentumbot.reporting import chart_worker
from momentumbot.reporting.chart_worker import ChartWorker, worth_a_worker
from momentumbot.reporting.report import write_report
from tests.reporting.conftest import Runs


def _pngs(run_dir: Path) -> list[Path]:
    return sorted(p.relative_to(run_dir) for p in (run_dir / "plots").rglob("*.png"))


def _copy(run: Path, parent: Path) -> Path:
    """The run folder under ``parent`` with the same name (its titles name it)."""
    copy = parent / run.name
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "plots", ignore_errors=True)
    (copy / "report.html").unlink(missing_ok=True)
    return copy


def _forced_worker(monkeypatch: pytest.MonkeyPatch) -> ChartWorker:
    monkeypatch.setenv(chart_worker.WORKER_ENV, "1")
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    worker = ChartWorker.start()
    assert worker is not None
    return worker


def test_a_worker_draws_the_same_files_as_this_process(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = _copy(runs.full, tmp_path / "here")
    there = _copy(runs.full, tmp_path / "there")
    write_report(here)
    answers: list[list[Path] | None] = []
    finish = ChartWorker.finish

    def recorded(self: ChartWorker) -> list[Path] | None:
        answers.append(finish(self))
        return answers[-1]

    monkeypatch.setattr(ChartWorker, "finish", recorded)
    worker = _forced_worker(monkeypatch)
    write_report(there, worker=worker)
    assert answers and answers[0] is not None, "the worker drew nothing"
    # on Linux the symbols' charts are drawn by the worker's fork, beside the run's charts
    assert worker.helped == sys.platform.startswith("linux")
    assert [p.name for p in answers[0]] == list(chart_worker.GENERAL_FILES)
    names = _pngs(here)
    assert len(names) == 4 + len(list((here / "plots" / "symbols").glob("*.png"))) > 4
    assert _pngs(there) == names
    different = [p for p in names if not filecmp.cmp(here / p, there / p, shallow=False)]
    assert different == []
    pages = [
        (run / "report.html").read_text(encoding="utf-8").replace(str(run), "RUN")
        for run in (here, there)
    ]
    assert pages[0] == pages[1]  # the page names the folder it is in; nothing else differs


def test_a_worker_that_dies_leaves_the_charts_to_this_process(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run = _copy(runs.full, tmp_path)
    worker = _forced_worker(monkeypatch)
    worker._proc.kill()
    worker._proc.wait()
    with caplog.at_level(logging.WARNING, logger="momentumbot.report"):
        write_report(run, worker=worker)
    assert "chart worker failed" in caplog.text
    general = sorted((run / "plots").glob("*.png"))
    assert sorted(p.name for p in general) == sorted(chart_worker.GENERAL_FILES)
    assert all(p.stat().st_size > 5_000 for p in general)
    traded = {p.stem for p in (run / "plots" / "symbols").glob("*.png")}
    assert traded and all(f'value="{s}"' in (run / "report.html").read_text() for s in traded)


def test_the_worker_starts_only_when_it_can_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    monkeypatch.delenv(chart_worker.WORKER_ENV, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.3, 0.3))
    assert worth_a_worker()  # a core free
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 3.0, 2.0))
    assert not worth_a_worker()  # both busy: its imports would cost more than it saves
    monkeypatch.setenv(chart_worker.WORKER_ENV, "1")
    assert worth_a_worker()
    monkeypatch.setenv(chart_worker.WORKER_ENV, "0")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not worth_a_worker()
    assert ChartWorker.start() is None
    monkeypatch.setenv(chart_worker.WORKER_ENV, "1")
    monkeypatch.setattr(machine, "usable_cores", lambda: 1)
    assert not worth_a_worker()  # one core: nothing to gain


def test_the_worker_draws_without_the_engine_or_the_config() -> None:
    """What the worker imports to draw (its start is the cost it adds): no numba, no
    compiled kernels, no config loader, no bar store."""
    code = (
        "import sys\n"
        "from momentumbot.reporting import run_charts, symbol_chart, chart_data, plot_kit\n"
        "heavy = [m for m in ('numba', 'momentumbot.engine', 'momentumbot.config.loader',"
        " 'momentumbot.data.store') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_worker_never_used_is_stopped_with_its_handle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backtest that fails leaves its worker unused: closing it (or dropping it) ends the
    process at once instead of waiting for its imports."""
    worker = _forced_worker(monkeypatch)
    proc = worker._proc
    worker.close()
    assert proc.poll() is not None
    dropped = _forced_worker(monkeypatch)
    proc = dropped._proc
    del dropped
    assert proc.poll() is not None


def test_a_load_average_that_lags_asks_what_runs_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load average between one core idle and all busy (a run that just ended still
    counts in it) leaves the choice to the threads runnable this instant."""
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    monkeypatch.delenv(chart_worker.WORKER_ENV, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.8, 1.2, 0.6))
    monkeypatch.setattr(machine, "running_now", lambda: 1)  # only this process
    assert worth_a_worker()
    monkeypatch.setattr(machine, "running_now", lambda: 3)  # two others running
    assert not worth_a_worker()
    monkeypatch.setattr(machine, "running_now", lambda: None)  # not known
    assert not worth_a_worker()
    monkeypatch.setattr(machine, "running_now", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 2.0, 1.0))
    assert not worth_a_worker()  # busy for a while, whatever this instant says


def test_the_runnable_count_is_read_where_linux_gives_it() -> None:
    if not os.path.exists("/proc/loadavg"):
        pytest.skip("no /proc/loadavg here")
    running = machine.running_now()
    assert running is not None and running >= 1  # this test's own thread is running

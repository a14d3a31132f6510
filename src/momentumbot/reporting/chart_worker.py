"""The report's PNGs drawn in a second process while this one reads the bars and builds
report.html.

matplotlib draws with the GIL held, so a thread would not use the second core; a process
does. Started before the backtest (``ChartWorker.start()``), the worker imports numpy,
pandas and matplotlib while the backtest runs, then waits. ``begin(run)`` hands it the run's
tables (as read here) to draw equity.png, pnl_by_symbol.png and returns_by_day.png;
``symbol(chart, path)`` each traded symbol's chart as this process's pass over the symbols
makes it; ``allocation(...)`` the capital by symbol that pass computed, for allocation.png;
``finish()`` waits for every file.

Requests and answers are pickled over the worker's stdin and stdout. If the worker cannot
start, dies or fails, ``finish()`` says so (``None``) and the caller draws the charts itself,
so the report is the same either way.

    python -m momentumbot.reporting.chart_worker   (started by ChartWorker.start())
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from momentumbot.domain import machine
from momentumbot.reporting.chart_helper import ChartHelper

if TYPE_CHECKING:
    from momentumbot.reporting.chart_data import SymbolLines
    from momentumbot.reporting.run_data import RunData

log = logging.getLogger("momentumbot.report")

GENERAL_FILES = ("equity.png", "allocation.png", "pnl_by_symbol.png", "returns_by_day.png")


# "1": always start a worker (on two cores or more), "0": never; unset: when a core is free
WORKER_ENV = "MOMENTUMBOT_CHART_WORKER"


def worth_a_worker() -> bool:
    """Whether a second process would draw beside this one: two cores or more, and one of
    them free (on a busy machine the worker's own start, about a CPU second of imports,
    would cost more than drawing here), unless MOMENTUMBOT_CHART_WORKER says otherwise.

    A core is free when the minute's load average leaves one idle. The average lags: a run
    that just ended (a demo's first, compiling run, or the previous backtest of a script)
    still counts in it for a minute, so between that and all cores busy, the threads
    runnable this instant decide (one core left over for the worker)."""
    choice = os.environ.get(WORKER_ENV, "").strip()
    if choice == "0" or machine.usable_cores() < 2:
        return False
    return choice == "1" or machine.second_core_free()


def _widen(pipe: IO[bytes] | None) -> None:
    """A 1 MB pipe where Linux allows it: a symbol's chart is then one write and one read
    (with 64 kB the worker's reader waits for the GIL once per 64 kB while it draws)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if pipe is None or set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), set_size, 1 << 20)


class ChartWorker:
    """The parent's handle on a chart worker process."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._failed = False
        self._answered: list[bool] = []  # [True] once it answered
        self.helped = False  # whether its helper (a fork) drew the symbols' charts
        # a worker never used (the backtest failed) ends with its handle
        self._ended = weakref.finalize(self, _end, proc, self._answered)

    @classmethod
    def start(cls) -> ChartWorker | None:
        """A worker on its way up, or None when :func:`worth_a_worker` says no."""
        if not worth_a_worker():
            return None
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "momentumbot.reporting.chart_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=env,
            )  # fmt: skip
        except OSError as exc:
            log.warning("charts drawn in this process: no worker (%s)", exc)
            return None
        _widen(proc.stdin)
        return cls(proc)

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._failed:
            return
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            pickle.dump(message, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
        except (OSError, ValueError):
            self._failed = True

    def begin(self, run: RunData, symbol_plots: bool = True) -> None:
        """Draw the charts that need only the run's tables (its config stays here: the
        worker then needs neither the config's nor the engine's modules)."""
        self._send(("begin", dataclasses.replace(run, config=None), symbol_plots))

    def symbol(self, lines: SymbolLines, path: Path) -> None:
        """Draw one symbol's chart (as :func:`chart_data.symbol_lines` made it) into ``path``."""
        self._send(("symbol", lines, str(path)))

    def allocation(self, bounds: Any, by_symbol: dict[str, Any], note: str | None) -> None:
        """Draw allocation.png from the capital buckets of the pass over the symbols."""
        self._send(("allocation", bounds, by_symbol, note))

    def finish(self) -> list[Path] | None:
        """The four charts' paths once written, or None when the worker failed (the
        caller then draws them)."""
        answer: Any = None
        if not self._failed:
            stdout = self._proc.stdout
            assert stdout is not None
            try:
                answer = pickle.load(stdout)
                self._answered.append(True)
            except (EOFError, OSError, pickle.UnpicklingError):
                answer = ("error", "the chart worker ended without an answer")
        self.close()
        if not isinstance(answer, tuple) or answer[0] != "done":
            why = answer[1] if isinstance(answer, tuple) else "it could not be reached"
            log.warning("chart worker failed (%s); drawing its charts here", why)
            return None
        self.helped = len(answer) > 2 and bool(answer[2])
        return [Path(p) for p in answer[1]]

    def close(self) -> None:
        """End the worker: after its answer it has ended by itself; before (the backtest
        failed, or the worker did), it is stopped rather than waited for."""
        self._ended()


def _end(proc: subprocess.Popen[bytes], answered: list[bool]) -> None:
    if not answered and proc.poll() is None:
        proc.kill()  # our own worker, still importing or drawing for nobody
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=1.0)  # it ends at the end of its input
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------- the worker side


def _reader(
    stdin: IO[bytes],
    inbox: queue.SimpleQueue[tuple[Any, ...] | None],
    helper: ChartHelper | None,
) -> None:
    """Take every request off the pipe as it comes (so the parent never waits to write
    while a chart is being drawn); None at the end. The symbols' charts go straight on to
    the helper, if there is one (what it cannot take is drawn here)."""
    while True:
        try:
            message = pickle.load(stdin)
        except (EOFError, OSError, pickle.UnpicklingError):
            inbox.put(None)
            return
        if not isinstance(message, tuple):
            inbox.put(None)
            return
        if helper is not None and message[0] == "begin":
            run = message[1]
            # the symbols' figure is built while this process's parent reads the first bars
            wanted = bool(message[2]) if len(message) > 2 else True
            if wanted and len(run.traded_symbols):
                helper.send(("setup", run.axis, run.run_dir.name))
        elif helper is not None and message[0] == "symbol" and helper.send(message):
            continue
        inbox.put(message)


def _serve(stdin: IO[bytes], stdout: IO[bytes], helper: ChartHelper | None) -> None:
    from momentumbot.reporting import run_charts
    from momentumbot.reporting.chart_data import CapitalBuckets
    from momentumbot.reporting.symbol_chart import LazySymbolFigure

    inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(stdin, inbox, helper), daemon=True).start()
    begin = inbox.get()
    if begin is None or begin[0] != "begin":
        return
    run = begin[1]
    figures = LazySymbolFigure(run.axis, run.run_dir.name)
    try:
        plot_dir = run.run_dir / "plots"
        paths = {name: plot_dir / name for name in GENERAL_FILES}
        run_charts.equity_png(run, paths["equity.png"])
        run_charts.pnl_by_symbol_png(run, paths["pnl_by_symbol.png"])
        run_charts.returns_by_day_png(run, paths["returns_by_day.png"])
        while (message := inbox.get()) is not None and message[0] == "symbol":
            figures.figure().render(message[1], Path(message[2]))
        if message is None or message[0] != "allocation":
            return
        capital = CapitalBuckets(bounds=message[1], by_symbol=message[2])
        run_charts.allocation_png(run, capital, paths["allocation.png"], message[3])
        figures.close()  # every symbol's PNG written
        helped = helper is not None and not helper.failed
        why = helper.finish() if helper is not None else None
        helper = None
        answer: tuple[Any, ...] = (
            ("done", [str(paths[name]) for name in GENERAL_FILES], helped)
            if why is None
            else ("error", why)
        )
    except Exception as exc:
        answer = ("error", f"{type(exc).__name__}: {exc}")
    finally:
        figures.close(quietly=True)
        if helper is not None:
            helper.finish()
    pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.flush()
    # nothing left to do: skip tearing the interpreter down (the parent may wait for it)
    os._exit(0)


def main() -> None:
    """The worker: import what drawing needs now (while the parent backtests), then serve
    one report."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the answer pipe
    from momentumbot.reporting import plot_kit

    # fonts found and loaded once, before the run folder is there
    fig = plot_kit.figure(1.0)
    fig.text(0.5, 0.5, "$0123456789 Jan Feb -.,%", fontsize=10)
    fig.canvas.draw()
    del fig
    # what is imported stays: the collector skips it from here on (its full passes over the
    # libraries' objects cost tens of milliseconds each while the charts are drawn)
    gc.collect()
    gc.freeze()
    # the symbols' charts drawn by a fork of this process (before any thread starts here)
    helper = ChartHelper.fork()
    _serve(stdin, stdout, helper)
    os._exit(0)  # the parent ended without a report (its backtest failed): nothing to tidy


if __name__ == "__main__":
    main()

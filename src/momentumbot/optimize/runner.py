"""Who runs a sweep's backtests: in this process, a pool of local worker processes, or a
Dask distributed cluster. Each worker gets the job (bars and base config) once, warms the
compiled code once, then takes one task at a time; results come back as they finish.

The local pool is our own few dozen lines over `multiprocessing` rather than
`concurrent.futures`: when one worker dies, an executor breaks every pending future, while
here the pool knows which task each worker holds, so a dead worker loses only that task
(tried once more on a fresh worker) and the others keep going.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import signal
import sys
import time
import traceback
import types
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import numpy as np

from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError, MomentumbotError, RetryLaterError
from momentumbot.engine.backtest import BacktestResult
from momentumbot.optimize.fast import SweepData, Window, warm_compiled_code
from momentumbot.optimize.space import ParamSet, ParamSpec, apply_params
from momentumbot.reporting.metrics import compute_figures, daily_returns

MAX_ATTEMPTS = 2  # a task whose worker died is tried once more, then reported as failed


@dataclass(frozen=True)
class Task:
    """One backtest of a sweep: a parameter set over a span of sessions."""

    key: str
    phase: str  # "sweep", "train" (walk-forward in-sample) or "test" (out-of-sample)
    window: int
    span: Window
    params: ParamSet
    keep_run: bool = False  # send back the whole BacktestResult (to write a run folder)


@dataclass(frozen=True)
class TaskResult:
    task: Task
    figures: dict[str, Any] | None
    daily: np.ndarray | None
    seconds: float
    worker: str
    error: str | None = None
    run: BacktestResult | None = None


@dataclass
class SweepJob:
    """Everything a worker needs, shipped once: the bars, the base config, the specs."""

    data: SweepData
    base: dict[str, Any]  # AppConfig.model_dump() of the base config
    specs: list[ParamSpec]
    _warm: bool = field(default=False, repr=False)

    def config(self, params: ParamSet) -> AppConfig:
        return apply_params(self.base, self.specs, params)

    def ensure_warm(self) -> float:
        """Load the compiled code once per process (per worker on Dask: the job object
        lives in the worker's memory for the whole sweep)."""
        if self._warm:
            return 0.0
        self._warm = True
        return warm_compiled_code()

    def execute(self, task: Task, worker: str) -> TaskResult:
        t0 = time.perf_counter()
        try:
            cfg = self.config(task.params)
            if task.keep_run:
                run = self.data.run(cfg, task.span, keep_allocations=True)
                figures = compute_figures(
                    run.equity,
                    run.fills,
                    start_equity=run.initial_cash,
                    overnight_carries=run.overnight_carries,
                )
                daily = daily_returns(run.equity, start_equity=run.initial_cash).to_numpy()
                return TaskResult(task, figures, daily, time.perf_counter() - t0, worker, run=run)
            out = self.data.figures(cfg, task.span)
            return TaskResult(task, out.figures, out.daily, out.seconds, worker)
        except MomentumbotError as exc:
            return TaskResult(task, None, None, time.perf_counter() - t0, worker, error=str(exc))
        except Exception:
            return TaskResult(
                task, None, None, time.perf_counter() - t0, worker, error=traceback.format_exc()
            )


OnResult = Callable[[TaskResult], None]


class Runner(Protocol):
    """Runs tasks and hands each result (or failure, as a result with `error`) to on_result."""

    description: str

    def load(self, job: SweepJob) -> None: ...
    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None: ...
    def close(self) -> None: ...


class InlineRunner:
    """One process: the tasks run here, one after another (--workers 1)."""

    def __init__(self) -> None:
        self.job: SweepJob | None = None
        self.description = "1 process"
        self.warm_seconds = [warm_compiled_code()]

    def load(self, job: SweepJob) -> None:
        self.job = job
        job._warm = True

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        assert self.job is not None, "load(job) first"
        for task in tasks:
            on_result(self.job.execute(task, "local-0"))

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ local process pool


def _worker_main(conn: Connection, name: str, job: SweepJob | None = None) -> None:
    """A pool worker: warm up, take the job (inherited when forked, else sent), then tasks."""
    # Ctrl-C reaches the whole process group; the parent decides, workers just stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import numba

        numba.set_num_threads(1)  # one worker per core: no threads on top
    except (ImportError, ValueError, RuntimeError):  # pragma: no cover - threading layer refused
        pass
    conn.send(("ready", warm_compiled_code()))
    if job is not None:
        job._warm = True
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        item = pickle.loads(message)
        if item is None:
            return
        if isinstance(item, SweepJob):
            job = item
            job._warm = True
            continue
        assert job is not None
        conn.send(("done", job.execute(item, name)))


def _fork_is_safe() -> bool:
    if sys.platform != "linux":
        return False
    try:
        from numba.np.ufunc import parallel
    except ImportError:  # pragma: no cover - numba moved it
        return False
    return not getattr(parallel, "_is_initialized", True)


@dataclass
class _Worker:
    name: str
    process: BaseProcess
    conn: Connection
    ready: bool = False
    task: Task | None = None


class LocalPool:
    """N worker processes, each holding the job.

    On Linux, when this process has not started numba's thread pool (the command line
    never has by then), the workers are forked once the bars are loaded: they start in
    milliseconds with the bars already in memory (shared until written) and only load the
    compiled code. Otherwise (macOS, Windows, or a process that ran parallel numba code:
    forking after OpenMP started is unsafe) they are spawned early, import and warm up
    while the parent loads, and get the job through their pipe."""

    def __init__(self, workers: int, method: str | None = None) -> None:
        self.method = method or ("fork" if _fork_is_safe() else "spawn")
        self._ctx: Any = mp.get_context(self.method)
        self._job: SweepJob | None = None
        self._payload: bytes | None = None
        self._n = max(1, workers)
        self._workers: list[_Worker] = []
        self._spawned = 0
        self._early_deaths = 0
        self.description = f"local pool of {self._n} processes"
        self.warm_seconds: list[float] = []

    def start(self, n: int | None = None) -> None:
        """Start the workers (spawned ones import and warm up while the parent loads)."""
        if self.method == "fork" and self._job is None:
            return  # forked workers start once the job is loaded: they inherit it
        while len(self._workers) < min(self._n, n or self._n):
            self._workers.append(self._spawn())

    def load(self, job: SweepJob) -> None:
        """Give every worker (and later any replacement) the job, once."""
        self._job = job
        if self.method == "fork":
            self.start()
            return
        self._payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        for w in self._workers:
            w.conn.send_bytes(self._payload)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        name = f"local-{self._spawned}"
        self._spawned += 1
        inherited = self._job if self.method == "fork" else None
        proc = self._ctx.Process(
            target=_worker_main, args=(child, name, inherited), name=name, daemon=True
        )
        # A spawned child re-imports the parent's __main__ (for us the CLI and every
        # command's imports) only to find functions defined there; ours live in this
        # module, so the child is started with a bare __main__ and skips that second.
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            proc.start()
        finally:
            sys.modules["__main__"] = main
        child.close()
        if self._payload is not None:
            parent.send_bytes(self._payload)
        return _Worker(name, proc, parent)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        pending = deque(tasks)
        if not pending:
            return
        assert self._job is not None, "load(job) first"
        attempts: dict[str, int] = {}
        self.start(len(pending))
        while pending or any(w.task is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.task is None and pending:
                    w.task = pending.popleft()
                    w.conn.send_bytes(pickle.dumps(w.task, protocol=pickle.HIGHEST_PROTOCOL))
            by_object: dict[Any, _Worker] = {}
            for w in self._workers:
                by_object[w.conn] = w
                by_object[w.process.sentinel] = w
            for obj in wait(list(by_object)):
                w = by_object[obj]
                if w not in self._workers:
                    continue
                if obj is w.conn:
                    try:
                        kind, value = w.conn.recv()
                    except (EOFError, OSError):
                        self._replace(w, pending, attempts, on_result)
                        continue
                    if kind == "ready":
                        w.ready = True
                        self.warm_seconds.append(float(value))
                        self._early_deaths = 0
                    else:
                        w.task = None
                        on_result(value)
                elif not w.process.is_alive() and not w.conn.poll():
                    self._replace(w, pending, attempts, on_result)

    def _replace(
        self, dead: _Worker, pending: deque[Task], attempts: dict[str, int], on_result: OnResult
    ) -> None:
        """A worker died: its task goes back to the queue (or fails after MAX_ATTEMPTS)."""
        self._workers.remove(dead)
        dead.conn.close()
        dead.process.join(timeout=5)
        code = dead.process.exitcode
        if not dead.ready:
            self._early_deaths += 1
            if self._early_deaths >= 3:
                raise RuntimeError(f"sweep workers die while starting (exit code {code})")
        task = dead.task
        if task is not None:
            attempts[task.key] = attempts.get(task.key, 0) + 1
            if attempts[task.key] < MAX_ATTEMPTS:
                pending.appendleft(task)
            else:
                on_result(
                    TaskResult(
                        task,
                        None,
                        None,
                        0.0,
                        dead.name,
                        error=f"its worker process died {MAX_ATTEMPTS} times (exit code {code})",
                    )
                )
        if pending or any(w.task is not None for w in self._workers):
            self._workers.append(self._spawn())

    def close(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send_bytes(pickle.dumps(None))
        deadline = time.monotonic() + 5
        for w in self._workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=2)
            w.conn.close()
        self._workers.clear()

    def abort(self) -> None:
        """Stop every worker now (after Ctrl-C): their tasks are simply not recorded."""
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self._workers:
            w.process.join(timeout=2)
            w.conn.close()
        self._workers.clear()


# ---------------------------------------------------------------------------- Dask


def _prepare_dask_worker() -> float:
    """Import and warm up on a Dask worker while the client still loads the bars."""
    try:
        import numba

        numba.set_num_threads(1)  # one single-threaded worker per core
    except (ImportError, ValueError, RuntimeError):  # pragma: no cover - threading layer refused
        pass
    return warm_compiled_code()


def _dask_execute(job: SweepJob, task: Task) -> TaskResult:
    from distributed import get_worker

    job.ensure_warm()
    return job.execute(task, get_worker().address)


class DaskRunner:
    """The same tasks on a Dask distributed cluster. The job is scattered to every worker
    once; a worker that dies has its task rescheduled by Dask (after Dask's allowed
    failures it comes back as failed)."""

    def __init__(self, scheduler: str | Any) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - a declared dependency
            raise ConfigError(
                "--scheduler needs dask[distributed]: pip install 'dask[distributed]'"
            ) from None
        try:
            self.client = Client(scheduler, timeout="15s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RetryLaterError(f"--scheduler {scheduler}: cannot reach it ({exc})") from None
        n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        self.description = f"Dask cluster at {self.client.scheduler.address} ({n} workers)"
        self._job: Any = None
        workers = list(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        self._prepared = [
            self.client.submit(_prepare_dask_worker, pure=False, workers=[w]) for w in workers
        ]

    def load(self, job: SweepJob) -> None:
        self._job = self.client.scatter(job, broadcast=True, hash=False)

    def run(self, tasks: Iterable[Task], on_result: OnResult) -> None:
        from distributed import as_completed

        futures = {self.client.submit(_dask_execute, self._job, t, pure=False): t for t in tasks}
        if not futures:
            return
        try:
            with self.client.as_current():
                completed = as_completed(list(futures))
            for fut in completed:
                task = futures.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # KilledWorker and the like: this task only
                    result = TaskResult(task, None, None, 0.0, "dask", error=repr(exc))
                fut.release()
                on_result(result)
        finally:
            for fut in futures:
                fut.cancel()

    def close(self) -> None:
        self.client.close()

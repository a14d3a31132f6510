"""Work that two threads share: the backtest's worker thread prepares the next chunk (its
quiet-volume walk, its transposes) in blocks, and the minute loop's thread, done with its own
chunk, takes blocks too instead of waiting (`WorkBoard.help_until`). The blocks touch
disjoint data and give the same result whichever thread runs them, so a run's output does
not depend on who did what; only the engine's wall time does (the loop's thread used to sit
idle for the worker's whole preparation when the worker was the slower one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class SharedJob:
    """fn(lo, hi, *args) over [0, n) in blocks of `block`, claimed by whichever thread calls
    help(); `run()` (the posting thread) takes part and returns when every block is done."""

    def __init__(self, fn: Callable[..., None], n: int, args: tuple[Any, ...], block: int) -> None:
        self._fn = fn
        self._n = n
        self._args = args
        self._block = max(1, block)
        self._lock = threading.Lock()
        self._next = 0
        self._left = n
        self._done = threading.Event()
        self._error: BaseException | None = None
        if n <= 0:
            self._done.set()

    def unclaimed(self) -> bool:
        return self._next < self._n

    def help(self) -> None:
        """Run blocks until none is left to claim (a block's failure is kept for run() to
        raise). An interrupt (Ctrl-C reaches the main thread, which may be helping) gives the
        job up: run() returns at once and raises it, and this thread raises it now."""
        try:
            while True:
                with self._lock:
                    lo = self._next
                    if lo >= self._n:
                        return
                    hi = min(lo + self._block, self._n)
                    self._next = hi
                try:
                    if self._error is None:
                        self._fn(lo, hi, *self._args)
                except Exception as exc:  # handed to the posting thread, which raises it
                    self._error = self._error or exc
                with self._lock:
                    self._left -= hi - lo
                    if self._left == 0:
                        self._done.set()
        except BaseException as exc:
            self._abandon(exc)
            raise

    def _abandon(self, exc: BaseException) -> None:
        with self._lock:
            self._error = self._error or exc
            self._next = self._n
            self._done.set()

    def run(self) -> None:
        self.help()
        self._done.wait()
        if self._error is not None:
            raise self._error


class WorkBoard:
    """Where the worker thread posts the job it is on, for the minute loop's thread to join."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._job: SharedJob | None = None

    def post(self, fn: Callable[..., None], n: int, args: tuple[Any, ...], block: int) -> SharedJob:
        job = SharedJob(fn, n, args, block)
        with self._cond:
            self._job = job
            self._cond.notify_all()
        return job

    def _poke(self, _: object = None) -> None:
        with self._cond:
            self._cond.notify_all()

    def help_until(self, future: Future[Any]) -> tuple[float, float]:
        """Take part in the posted jobs until `future` is done. Returns (idle, helping)
        seconds: idle is the time with nothing to take (the worker reading bars, or other
        threads finishing the last blocks)."""
        future.add_done_callback(self._poke)
        idle = helping = 0.0
        while True:
            t0 = time.perf_counter()
            with self._cond:
                while not future.done() and (self._job is None or not self._job.unclaimed()):
                    self._cond.wait()
                job = None if future.done() else self._job
            t1 = time.perf_counter()
            idle += t1 - t0
            if job is None:
                return idle, helping
            job.help()
            helping += time.perf_counter() - t1

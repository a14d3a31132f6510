"""One supervisor for every background task and broker callback of a trading run.

Nothing the bot starts may die unseen. A failure is logged at ERROR with its traceback and
handed to `on_failure` (the trader journals it); then, by the task's policy:

- `retry`: the task runs again after a backoff (1 s doubling to 30 s, reset after a
  success). For work that is safe to repeat: reconnecting, resynchronising, the stream
  staleness watch, a bar stream callback (the resync that follows fetches the bars again).
- `fatal`: `on_fatal` is called once; the trader flattens if it can and exits with
  `TaskFailed.exit_code`, so a process supervisor restarts it and the run folder resumes.
  For work whose failure leaves the books in doubt: booking fills, order events, journal
  writes, the minute loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

from momentumbot.domain.errors import MomentumbotError

log = logging.getLogger("momentumbot.supervisor")

Policy = Literal["retry", "fatal"]
P = ParamSpec("P")
R = TypeVar("R")


class TaskFailed(MomentumbotError):
    """A task of the trading run failed in a way that leaves the books in doubt (a bug, a
    broken disk): the bot flattened if it could and stopped. Read run.log; the same command
    resumes the run folder (a process supervisor can restart it on this exit code)."""

    exit_code = 7


@dataclass(frozen=True)
class Failure:
    task: str
    policy: Policy
    error: BaseException
    traceback: str

    @property
    def message(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


class Supervisor:
    """Runs named tasks and guards callbacks; see the module's docstring for the policies."""

    def __init__(
        self,
        on_failure: Callable[[Failure], None],
        on_fatal: Callable[[Failure], None],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        self._on_failure = on_failure
        self._on_fatal = on_fatal
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: list[Failure] = []
        self.fatal: Failure | None = None
        self.closed = False

    # ------------------------------------------------------------------ reporting

    def report(self, task: str, policy: Policy, exc: BaseException) -> Failure:
        """Log and record one failure; call `on_fatal` the first time a fatal one comes."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        failure = Failure(task, policy, exc, tb)
        self.failures.append(failure)
        log.error(
            "task %s failed (%s): %s",
            task,
            "retrying" if policy == "retry" else "stopping",
            failure.message,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        with contextlib.suppress(Exception):
            self._on_failure(failure)
        if policy == "fatal" and self.fatal is None:
            self.fatal = failure
            self._on_fatal(failure)
        return failure

    # ------------------------------------------------------------------ tasks

    def spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        policy: Policy,
        replace: bool = True,
    ) -> asyncio.Task[None]:
        """Run `factory()` as the task `name` (a running one of that name is cancelled first
        with `replace`, else kept and returned)."""
        old = self._tasks.get(name)
        if old is not None and not old.done():
            if not replace:
                return old
            old.cancel()
        task = asyncio.ensure_future(self._run(name, factory, policy))
        task.set_name(name)
        self._tasks[name] = task
        return task

    def cancel(self, name: str) -> None:
        t = self._tasks.get(name)
        if t is not None and not t.done():
            t.cancel()

    async def _run(self, name: str, factory: Callable[[], Awaitable[None]], policy: Policy) -> None:
        delay = self.backoff_initial
        while not self.closed:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.report(name, policy, exc)
                if policy == "fatal" or self.closed or self.fatal is not None:
                    return
            log.warning("task %s: next try in %.1f s", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    # ------------------------------------------------------------------ callbacks

    def guard(
        self,
        name: str,
        fn: Callable[P, R],
        *,
        policy: Policy = "fatal",
        on_retry: Callable[[], None] | None = None,
    ) -> Callable[P, R | None]:
        """`fn` wrapped for a broker callback: an exception is reported instead of being lost
        in the event library's log; with `retry`, `on_retry` starts the repair."""

        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                self.report(name, policy, exc)
                if policy == "retry" and on_retry is not None and self.fatal is None:
                    with contextlib.suppress(Exception):
                        on_retry()
                return None

        return wrapped

    async def close(self) -> None:
        """Cancel every task and wait for them."""
        self.closed = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()


def describe(failure: Failure | None) -> str:
    return "" if failure is None else f"task {failure.task} failed: {failure.message}"


__all__ = ["Failure", "Supervisor", "TaskFailed", "describe"]

"""The chart worker's helper: a fork of the worker that draws the symbols' PNGs while the
worker draws the run's four charts, so that once the backtest has ended both cores draw.

Forked after the worker's imports and fonts are loaded (and before it starts any thread),
it shares them copy-on-write: a second drawing process for no second start. The worker's
reader thread forwards it the run's minute axis and each symbol's lines as they come;
closing its request pipe ends it, and it answers ``("done",)`` once every PNG is written
or ``("error", why)``. Linux only (elsewhere, or when the fork fails, the worker draws the
symbols itself).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]


class ChartHelper:
    """The worker's handle on its helper process."""

    def __init__(self, pid: int, requests: IO[bytes], answers: IO[bytes]) -> None:
        self._pid = pid
        self._requests: IO[bytes] | None = requests
        self._answers = answers
        self.failed = False

    @classmethod
    def fork(cls) -> ChartHelper | None:
        """A helper drawing beside this process, or None where it cannot be forked. Call
        it before this process starts a thread."""
        if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
            return None
        try:
            req_r, req_w = os.pipe()
            ans_r, ans_w = os.pipe()
        except OSError:
            return None
        _widen(req_w)
        try:
            pid = os.fork()
        except OSError:
            for fd in (req_r, req_w, ans_r, ans_w):
                os.close(fd)
            return None
        if pid == 0:  # the helper: whatever happens, it never returns into the worker's code
            try:
                os.close(req_w)
                os.close(ans_r)
                _detach_stdio()
                _draw_symbols(os.fdopen(req_r, "rb"), os.fdopen(ans_w, "wb"))
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(ans_w)
        return cls(pid, os.fdopen(req_w, "wb"), os.fdopen(ans_r, "rb"))

    def send(self, message: tuple[Any, ...]) -> bool:
        """Hand the helper a request; False when it cannot take it (the caller draws)."""
        if self.failed or self._requests is None:
            return False
        try:
            pickle.dump(message, self._requests, protocol=pickle.HIGHEST_PROTOCOL)
            self._requests.flush()
        except (OSError, ValueError):
            self.failed = True
            return False
        return True

    def finish(self) -> str | None:
        """Wait until every PNG sent is written: None, or why not."""
        if self._requests is not None:
            with contextlib.suppress(OSError):
                self._requests.close()
            self._requests = None
        try:
            answer = pickle.load(self._answers)
        except (EOFError, OSError, pickle.UnpicklingError):
            answer = ("error", "the chart helper ended without an answer")
        finally:
            with contextlib.suppress(OSError):
                self._answers.close()
            with contextlib.suppress(OSError):
                os.waitpid(self._pid, 0)
        if self.failed:
            return "the chart helper stopped taking charts"
        if isinstance(answer, tuple) and answer and answer[0] == "done":
            return None
        return str(answer[1]) if isinstance(answer, tuple) and len(answer) > 1 else "no answer"


def _widen(fd: int) -> None:
    """A 1 MB pipe where Linux allows it (a symbol's lines in one write)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, 1 << 20)


def _detach_stdio() -> None:
    """The helper reads nothing of the parent's requests and writes nothing on the worker's
    answer pipe (so a worker that dies is seen to end)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def _draw_symbols(requests: IO[bytes], answers: IO[bytes]) -> None:
    from momentumbot.reporting.symbol_chart import LazySymbolFigure

    unnamed: Any = None  # the worker's "setup" names the axis and the run first
    figures = LazySymbolFigure(unnamed, "")
    answer: tuple[Any, ...] = ("done",)
    try:
        while True:
            try:
                message = pickle.load(requests)
            except EOFError:
                break
            if message[0] == "setup":
                figures = LazySymbolFigure(message[1], message[2])
                figures.figure()  # made before the first symbol's lines come
            elif message[0] == "symbol":
                figures.figure().render(message[1], Path(message[2]))
        figures.close()  # every PNG written
    except Exception as exc:
        answer = ("error", f"{type(exc).__name__}: {exc}")
    finally:
        figures.close(quietly=True)
    with contextlib.suppress(OSError):
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()

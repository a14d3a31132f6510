"""The kill switch: a stop file in the run folder, SIGINT/SIGTERM, and `momentumbot stop`
(which writes the stop file). Whichever comes first asks the bot to stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path

STOP_FILE = "STOP"


def stop_file(run_dir: Path) -> Path:
    return run_dir / STOP_FILE


def request_stop(run_dir: Path, reason: str = "momentumbot stop") -> Path:
    """Ask the bot trading in `run_dir` to stop (it polls for the file)."""
    path = stop_file(run_dir)
    path.write_text(reason + "\n", encoding="utf-8")
    return path


class KillSwitch:
    """Holds the first stop reason; `check_file` looks for the stop file."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.reason = ""
        self._installed: list[signal.Signals] = []

    @property
    def tripped(self) -> bool:
        return bool(self.reason)

    def trip(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason

    def check_file(self) -> bool:
        path = stop_file(self.run_dir)
        if path.exists():
            text = ""
            with contextlib.suppress(OSError):
                text = path.read_text(encoding="utf-8").strip()
            self.trip(f"stop file {path}" + (f" ({text})" if text else ""))
        return self.tripped

    def clear_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            stop_file(self.run_dir).unlink()

    def install_signals(self, loop: asyncio.AbstractEventLoop, on_trip: Callable[[], None]) -> None:
        """SIGINT/SIGTERM trip the switch (only from the main thread, where signals land)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):

            def handler(s: signal.Signals = sig) -> None:
                self.trip(f"signal {s.name}")
                on_trip()

            try:
                loop.add_signal_handler(sig, handler)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on Unix
                pass

    def remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in self._installed:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # loop closed
                loop.remove_signal_handler(sig)
        self._installed.clear()

"""A trading run folder held by one process: its lock file, its run.log, its journal."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from momentumbot.domain.errors import ConfigError
from momentumbot.journal import journal as jr

LOCK_NAME = "trade.lock"
LOG_NAME = "run.log"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class RunFolder:
    """`open()` takes the folder (a second bot is refused), logs into run.log and opens the
    journal; `close()` lets go of all three.

    run.log takes every logger's records at `log_level` and above, the bot's and its
    libraries' (ib_async's order and error lines at their own level): the root logger holds the
    handler, so no library prints a raw line to the terminal (Python's last-resort handler only
    writes when no handler exists)."""

    def __init__(self, run_dir: Path, log_level: str = "INFO") -> None:
        self.run_dir = run_dir
        self.log_level = logging.getLevelName(log_level.upper())
        if not isinstance(self.log_level, int):
            raise ConfigError(f"--log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
        self._lock: IO[str] | None = None
        self._log: logging.Handler | None = None
        self._root_level = logging.NOTSET

    def open(self) -> jr.Journal:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        handler = logging.FileHandler(self.run_dir / LOG_NAME, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(self.log_level)
        bot = logging.getLogger("momentumbot")
        if bot.level == logging.NOTSET or bot.level > self.log_level:
            bot.setLevel(self.log_level)
        root = logging.getLogger()
        self._root_level = root.level
        if root.level > self.log_level:
            root.setLevel(self.log_level)
        root.addHandler(handler)
        self._log = handler
        try:
            return jr.Journal.open(self.run_dir / jr.JOURNAL_NAME, create=True)
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        fh = open(self.run_dir / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            other = fh.read().strip()
            fh.close()
            raise ConfigError(
                f"{self.run_dir}: another momentumbot is trading in this folder"
                + (f" (pid {other})" if other else "")
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock = fh

    def close(self) -> None:
        if self._log is not None:
            root = logging.getLogger()
            root.removeHandler(self._log)
            root.setLevel(self._root_level)
            self._log.close()
            self._log = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

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


class RunFolder:
    """`open()` takes the folder (a second bot is refused), logs into run.log and opens the
    journal; `close()` lets go of all three."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock: IO[str] | None = None
        self._log: logging.Handler | None = None

    def open(self) -> jr.Journal:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        handler = logging.FileHandler(self.run_dir / LOG_NAME, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("momentumbot")
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
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
            logging.getLogger("momentumbot").removeHandler(self._log)
            self._log.close()
            self._log = None
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

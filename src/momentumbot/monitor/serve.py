"""Serving the dashboard: inside the trading process on its event loop (`Dashboard`), or from
a run folder on its own (`momentumbot dashboard RUN_DIR`, read-only)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from momentumbot.journal.journal import JOURNAL_NAME
from momentumbot.monitor.snapshot import RunSnapshot, read_run
from momentumbot.monitor.web import TOKEN_ENV

log = logging.getLogger("momentumbot.dashboard")


def token_from_env() -> str:
    """The dashboard token from the environment, "" when unset."""
    return os.environ.get(TOKEN_ENV, "").strip()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str:
    """A warning for a dashboard reachable from other machines ("" on loopback)."""
    if is_loopback(host):
        return ""
    return (
        f"the dashboard listens on {host}, reachable from other machines: the token travels in "
        "clear text unless a TLS proxy is in front of it"
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the bot owns SIGINT/SIGTERM (they stop trading
    gracefully), so a Ctrl-C never stops the dashboard alone or the bot abruptly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Dashboard:
    """The dashboard served on the running event loop until `close()`."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self.server = _Server(config)
        self.host = host
        self.task: asyncio.Task[None] | None = None
        self.on_close: list[Callable[[], None]] = []

    async def start(self, timeout: float = 10.0) -> None:
        self.task = asyncio.create_task(self.server.serve(), name="dashboard")
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise OSError("the dashboard server stopped while starting")
            if time.monotonic() > deadline:
                raise OSError("the dashboard server did not start")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def close(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, 5.0)
        for fn in self.on_close:
            fn()


class RunFolderSource:
    """A run folder's snapshot, read again when its journal changes (at most once a second)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._key: tuple[int, ...] = ()
        self._snap: RunSnapshot | None = None
        self._read_at = 0.0

    def _stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for name in (JOURNAL_NAME, JOURNAL_NAME + "-wal"):
            with contextlib.suppress(OSError):
                st = (self.run_dir / name).stat()
                out += [st.st_mtime_ns, st.st_size]
        return tuple(out)

    def snapshot(self) -> RunSnapshot:
        now = time.monotonic()
        if self._snap is not None and now - self._read_at < 1.0:
            return self._snap
        key = self._stamp()
        if self._snap is None or key != self._key:
            self._snap = read_run(self.run_dir)
            self._key = key
        self._read_at = now
        assert self._snap is not None
        return self._snap

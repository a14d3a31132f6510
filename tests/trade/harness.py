"""Helpers for the trading tests: a bar store, a gateway in step mode on the test's loop, the
trade command run in a thread (its own loop, as from a shell), and a driver that moves the
market clock one minute at a time once the bot has dealt with the last one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import write_synthetic
from momentumbot.gateway.server import GatewayConfig, GatewayServer, ny_ns
from momentumbot.journal.journal import JOURNAL_NAME, read_progress

NS = 1_000_000_000
NS_MIN = 60 * NS


def synthetic_store(
    root: Path, symbols: Sequence[str], start: str, sessions: int, seed: int = 7
) -> BarStore:
    store = BarStore(root)
    write_synthetic(store, list(symbols), start=start, n_sessions=sessions, seed=seed)
    return store


def write_config(path: Path, symbols: Sequence[str], extra: str = "") -> Path:
    syms = ", ".join(f'"{s}"' for s in symbols)
    path.write_text(
        f"symbols = [{syms}]\n\n[broker]\nserver_time_poll_seconds = 0.1\n"
        f"reconnect_initial_seconds = 0.05\nconnect_timeout_seconds = 5.0\n{extra}",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def gateway(source: Any, start: str, **cfg: Any) -> AsyncIterator[GatewayServer]:
    cfg.setdefault("step_mode", True)
    cfg.setdefault("port", 0)
    srv = GatewayServer(source, GatewayConfig(start=start, **cfg))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@dataclass
class CliRun:
    """`momentumbot trade ...` in a thread, as a user would run it."""

    args: list[str]
    code: int | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        def target() -> None:
            try:
                self.code = main(self.args)
            except BaseException as exc:  # pragma: no cover - surfaced by the test
                self.error = exc

        self.thread = threading.Thread(target=target, name="trade-cli", daemon=True)

    def start(self) -> CliRun:
        self.thread.start()
        return self

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def progress(run_dir: Path) -> dict[str, str]:
    path = run_dir / JOURNAL_NAME
    if not path.exists():
        return {}
    try:
        return read_progress(path)
    except Exception:
        return {}


async def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class Driver:
    """Moves the gateway's clock minute by minute, each time after the bot caught up."""

    def __init__(
        self, gw: GatewayServer, bot_progress: Callable[[], int], bot_alive: Callable[[], bool]
    ) -> None:
        self.gw = gw
        self.bot_progress = bot_progress
        self.bot_alive = bot_alive

    async def settle(self, timeout: float = 20.0) -> None:
        target = self.gw.now_ns()
        await wait_for(
            lambda: self.bot_progress() >= target or not self.bot_alive(),
            timeout,
            f"the bot to catch up with {pd.Timestamp(target, tz='UTC')}",
        )

    async def run_to(self, hhmm: str, day: str | None = None, *, step_seconds: int = 60) -> None:
        d = (
            pd.Timestamp(day)
            if day
            else pd.Timestamp(
                pd.Timestamp(self.gw.now_ns(), tz="UTC").tz_convert("America/New_York").date()
            )
        )
        h, _, m = hhmm.partition(":")
        target = ny_ns(d, int(h), int(m))
        while self.gw.now_ns() < target and self.bot_alive():
            nxt = min(target, (self.gw.now_ns() // NS_MIN + 1) * NS_MIN)
            if step_seconds != 60:
                nxt = min(target, self.gw.now_ns() + step_seconds * NS)
            await self.gw.advance_to(nxt)
            await self.settle()


def cli_progress(run_dir: Path) -> Callable[[], int]:
    def get() -> int:
        p = progress(run_dir)
        if p.get("state") not in ("trading", "finished", "failed"):
            return -1
        return int(p.get("progress_ns", "0") or 0)

    return get


async def stop_thread(run: CliRun, timeout: float = 30.0) -> None:
    try:
        await wait_for(lambda: run.done, timeout, "the trade command to end")
    except AssertionError:
        import sys
        import traceback

        frame = sys._current_frames().get(run.thread.ident or 0)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "?"
        raise AssertionError(f"the trade command did not end; it is at:\n{stack}") from None
    with contextlib.suppress(Exception):
        run.thread.join(1)

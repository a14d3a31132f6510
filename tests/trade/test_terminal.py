"""The quiet console: the terminal shows the bot's status table and one-line events, never a
library's raw log line; run.log has every record at its level."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.domain.errors import ConfigError
from momentumbot.trading import terminal
from momentumbot.trading.folder import LOG_NAME, RunFolder
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    Driver,
    cli_progress,
    gateway,
    replayed,
    synthetic_store,
    trade_args,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(6)
DAY = "2024-01-03"
NS = 1_000_000_000


def _record(name: str, level: int, msg: str, **extra: object) -> logging.LogRecord:
    r = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    r.__dict__.update(extra)
    return r


def test_the_terminal_shows_the_bots_events_and_warnings_not_library_lines() -> None:
    assert terminal.is_event(_record("momentumbot.trade", logging.WARNING, "connectivity lost"))
    assert terminal.is_event(_record("momentumbot.trade", logging.INFO, "trading", event=True))
    assert not terminal.is_event(_record("momentumbot.trade", logging.INFO, "execution 1"))
    assert not terminal.is_event(_record("ib_async.wrapper", logging.WARNING, "Canceled order"))
    assert not terminal.is_event(_record("ib_async.wrapper", logging.ERROR, "Error 201"))
    assert not terminal.is_event(_record("momentumbot.gateway", logging.WARNING, "client gone"))
    line = terminal.one_line(_record("momentumbot.trade", logging.ERROR, "halted\nTraceback..."))
    assert re.fullmatch(r"\d\d:\d\d:\d\d ERROR halted", line)


def test_run_log_takes_library_records_and_nothing_reaches_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = RunFolder(tmp_path / "run", "INFO")
    folder.open().close()
    try:
        logging.getLogger("ib_async.wrapper").warning("Canceled order: Trade(orderId=5)")
        logging.getLogger("ib_async.wrapper").info("orderStatus: Trade(orderId=5)")
        logging.getLogger("ib_async.wrapper").debug("a debug line run.log does not want")
        logging.getLogger("momentumbot.trade").warning("connectivity lost")
    finally:
        folder.close()
    log = (tmp_path / "run" / LOG_NAME).read_text()
    assert "WARNING ib_async.wrapper: Canceled order: Trade(orderId=5)" in log
    assert "INFO ib_async.wrapper: orderStatus" in log
    assert "debug line" not in log and "connectivity lost" in log
    assert capsys.readouterr().err == ""  # no last-resort line on the terminal
    logging.getLogger("ib_async.wrapper").warning("after close")  # the handler is gone
    assert "after close" not in (tmp_path / "run" / LOG_NAME).read_text()


def test_log_level_is_checked_and_sets_run_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--log-level 'LOUD'"):
        RunFolder(tmp_path / "x", "LOUD")
    folder = RunFolder(tmp_path / "run", "WARNING")
    folder.open().close()
    try:
        logging.getLogger("momentumbot.trade").info("an info line")
        logging.getLogger("momentumbot.trade").error("an error line")
    finally:
        folder.close()
    log = (tmp_path / "run" / LOG_NAME).read_text()
    assert "an error line" in log and "an info line" not in log


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("terminal")
    return synthetic_store(root / "store", SYMBOLS, "2024-01-02", 3, seed=5)


class _Pty:
    """A pseudo-terminal the bot writes to, read in a thread so the bot never blocks."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the other side is closed
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        self._thread.join(timeout=5)
        raw = b"".join(self.chunks).decode("utf-8", "replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # terminal control sequences


@pytest.mark.slow
def test_a_terminal_run_shows_no_raw_library_lines(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection|Connection reset")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    out = tmp_path / "run"
    pty = _Pty()

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            args = trade_args(cfg, gw.port, out, console=True)
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "TERM": "xterm"}
            proc = subprocess.Popen(
                args, stdin=pty.slave, stdout=pty.slave, stderr=pty.slave, env=env
            )
            os.close(pty.slave)
            drv = Driver(gw, cli_progress(out), lambda: proc.poll() is None)
            await drv.settle(120)
            await drv.run_to("10:30")
            while not replayed(out).engine.order_count():
                await drv.run_to(_hhmm(gw.now_ns() + 60 * NS))
            proc.send_signal(signal.SIGTERM)
            for _ in range(200):  # the flatten fills in the next bar
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
                await gw.advance(60)
            await wait_for(lambda: proc.poll() is not None, 60, "the bot to exit")
            assert proc.returncode == 0

    asyncio.run(body())
    shown = pty.text()
    log = (out / LOG_NAME).read_text()
    assert re.search(r" (INFO|WARNING|ERROR) ib_async\.\w+: ", log), "run.log has ib_async's lines"
    assert "Trade(" in log
    assert "trading 6 symbols" in shown and "orders" in shown and "run folder:" in shown
    assert "ib_async" not in shown and "Trade(" not in shown and "Traceback" not in shown, shown


def _hhmm(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")

"""No background task dies unseen: an exception raised inside each kind of task is logged at
ERROR with its traceback, written to the journal, and then retried (reconnect, resync,
streams, staleness watch) or ends the run with exit code 7 after a flatten where the books
allow one (fills, order events, journal writes); the same command resumes the run folder."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from momentumbot.trading.supervisor import Failure, Supervisor, TaskFailed
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    CliRun,
    Driver,
    check_books,
    cli_progress,
    gateway,
    progress,
    replayed,
    stop_thread,
    synthetic_store,
    trading,
    wait_for,
    write_config,
)

SYMBOLS = default_symbols(4)
DAY = "2024-01-03"
DROPS = "Peer closed connection|Connection reset|API connection failed|Make sure API port"


# ---------------------------------------------------------------- the supervisor alone


def test_a_retried_task_runs_again_after_a_backoff_and_failures_are_reported() -> None:
    seen: list[Failure] = []
    fatal: list[Failure] = []
    calls = {"n": 0}

    async def flaky() -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError(f"boom {calls['n']}")

    async def body() -> None:
        sup = Supervisor(seen.append, fatal.append, backoff_initial=0.01, backoff_max=0.02)
        await sup.spawn("resync", flaky, policy="retry")
        await sup.close()

    asyncio.run(body())
    assert calls["n"] == 3
    assert [f.message for f in seen] == ["RuntimeError: boom 1", "RuntimeError: boom 2"]
    assert all("Traceback" in f.traceback and f.task == "resync" for f in seen)
    assert fatal == []


def test_a_fatal_failure_is_handed_over_once_and_guards_keep_callbacks_from_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Failure] = []
    fatal: list[Failure] = []
    repaired: list[bool] = []
    sup = Supervisor(seen.append, fatal.append)

    def bad(x: int) -> int:
        raise ValueError(f"bad {x}")

    assert sup.guard("fills", bad)(1) is None
    assert sup.guard("fills", bad)(2) is None
    assert (
        sup.guard("streams", bad, policy="retry", on_retry=lambda: repaired.append(True))(3) is None
    )
    assert sup.guard("fills", lambda x: x + 1)(1) == 2
    assert [f.task for f in fatal] == ["fills"] and fatal[0].message == "ValueError: bad 1"
    assert len(seen) == 3
    assert repaired == []  # no repair once the run is stopping
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 3 and errors[0].exc_info is not None


# ---------------------------------------------------------------- inside a trading run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    return synthetic_store(
        tmp_path_factory.mktemp("sup") / "store", SYMBOLS, "2024-01-02", 3, seed=5
    )


def cfg(tmp: Path, extra: str = "") -> Any:
    return load_config(write_config(tmp / "cfg.toml", SYMBOLS, extra))


def once(
    fn: Callable[..., Any], exc: BaseException, when: Callable[..., bool] = lambda *a: True
) -> Any:
    """`fn` that raises `exc` the first time `when(*args)` holds."""
    state = {"done": False}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not state["done"] and when(*args):
            state["done"] = True
            raise exc
        return fn(*args, **kwargs)

    return wrapped


def errors(out: Path) -> list[dict[str, Any]]:
    j = Journal.open(out / JOURNAL_NAME, create=False)
    try:
        return j.errors()
    finally:
        j.close()


def assert_reported(out: Path, task: str, policy: str, message: str) -> None:
    log = (out / "run.log").read_text()
    line = f"ERROR momentumbot.supervisor: task {task} failed ({'retrying' if policy == 'retry' else 'stopping'}): {message}"
    assert line in log, log[-3000:]
    assert "Traceback (most recent call last)" in log
    rows = [e for e in errors(out) if e["task"] == task]
    assert rows and rows[0]["policy"] == policy and rows[0]["message"] == message, errors(out)
    assert "Traceback" in rows[0]["traceback"]


@pytest.mark.parametrize("task", ["reconnect", "resync", "streams", "stale-watch"])
def test_a_failing_task_that_is_safe_to_repeat_is_retried(
    task: str, store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow(DROPS)
    ib_log.expect(202)
    out = tmp_path / "out"
    boom = RuntimeError(f"injected into {task}")

    async def body() -> None:
        async with trading(store, DAY, out, cfg(tmp_path)) as s:
            tr = s.trader
            await s.drv.settle(60)
            await s.drv.run_to("10:30")
            if task == "reconnect":
                tr.broker.connect = once(tr.broker.connect, boom)
            elif task == "resync":
                conn = tr.session.connection
                conn.reconcile = once(conn.reconcile, boom, lambda why: why == "reconnect")
            elif task == "streams":
                tr.minutes.store = once(tr.minutes.store, boom)
            else:
                tr.session.connection.check_stale = once(tr.session.connection.check_stale, boom)
            if task in ("reconnect", "resync"):
                tr.broker.drop()
                await wait_for(
                    lambda: tr.stats.reconnects >= 1 and tr.conn.can_trade, 30, "reconnect"
                )
            await s.drv.run_to("10:35")
            await s.drv.settle()
            if task == "stale-watch":
                await wait_for(lambda: bool(tr.sup.failures), 10, "the staleness watch to run")
            await s.drv.run_to("16:01")
            outcome = await s.finish()
            assert outcome.sessions == 1
            check_books(tr, s.gw)

    asyncio.run(body())
    assert_reported(out, task, "retry", f"RuntimeError: injected into {task}")
    assert progress(out)["state"] == "finished"


def test_a_failing_order_event_handler_flattens_and_stops_with_exit_code_7(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202, 10148)  # the flatten's cancels can cross fills
    out = tmp_path / "out"

    async def body() -> None:
        config = cfg(tmp_path, "[risk]\nstop_wait_seconds = 3.0\n")
        async with trading(store, DAY, out, config) as s:
            tr = s.trader
            await s.drv.settle(60)
            await s.drv.run_to("10:00")
            # a quiet minute (positions held, no order working): no cancel can cross a fill
            while not tr.engine.positions() or tr.engine.working_orders():
                await s.gw.advance(60)
                await s.drv.settle()
            events = tr.session.events
            events.on_order_status = once(
                events.on_order_status, RuntimeError("injected into orders")
            )
            held = tr.engine.positions()
            tr.broker.listener.on_order_status(None)  # an order event arrives and its handler fails
            for _ in range(60):
                if s.task.done():
                    break
                await s.gw.advance(60)
                await asyncio.sleep(0.05)
            with pytest.raises(TaskFailed) as info:
                await s.finish()
            assert info.value.exit_code == 7
            check_books(tr, s.gw)
            orders = pd.read_csv(out / "orders.csv")
            flat = orders[orders.reason == "flatten"]
            assert dict(zip(flat.symbol, flat.quantity, strict=True)) == held
            assert (flat.status == "filled").all()
            account = s.gw.broker.accounts["DU0000001"]
            assert not {sym: p.qty for sym, p in account.held().items() if p.qty}

    asyncio.run(body())
    assert_reported(out, "orders", "fatal", "RuntimeError: injected into orders")
    log = (out / "run.log").read_text()
    assert "flattening every position after the failure" in log
    assert progress(out)["state"] == "failed"


def test_a_failing_journal_write_exits_7_and_the_same_command_resumes(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails under the minute loop: one line on stderr, exit code 7, no flatten from
    an engine that is ahead of its journal; the same command resumes and trades the day."""
    ib_log.expect(202)
    ib_log.allow(DROPS)
    out = tmp_path / "out"
    path = write_config(tmp_path / "cfg.toml", SYMBOLS)
    real = Journal.add_mark
    calls = {"n": 0}

    def failing(self: Journal, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 45:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, *args)

    async def body() -> tuple[int, int]:
        async with gateway(store, DAY) as gw:
            args = ["trade", "--config", str(path), "--port", str(gw.port), "--client-id", "7",
                    "--out", str(out), "--sessions", "1", "--no-console"]  # fmt: skip
            monkeypatch.setattr(Journal, "add_mark", failing)
            first = CliRun(args).start()
            drv = Driver(gw, cli_progress(out), lambda: not first.done)
            await drv.settle(60)
            await drv.run_to("11:00")
            await stop_thread(first)
            monkeypatch.setattr(Journal, "add_mark", real)
            second = CliRun(args).start()
            drv = Driver(gw, cli_progress(out), lambda: not second.done)
            await wait_for(lambda: progress(out).get("state") == "trading", 60, "the resume")
            await drv.settle(60)
            await drv.run_to("16:01")
            await stop_thread(second)
            check_books(replayed(out), gw)
            return int(first.code or 0), int(second.code or 0)

    first, second = asyncio.run(body())
    assert first == 7
    assert second == 0
    assert_reported(out, "minutes", "fatal", "OperationalError: disk I/O error")
    assert "flattening every position" not in (out / "run.log").read_text()
    assert progress(out)["state"] == "finished"

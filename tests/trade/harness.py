"""Helpers for the trading tests: a bar store, a gateway in step mode on the test's loop, the
trade command run in a thread (its own loop, as from a shell), and a driver that moves the
market clock one minute at a time once the bot has dealt with the last one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
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
from momentumbot.gateway.faults import Faults
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
    """A config for the tests: fast reconnects and history; `extra` starts inside [broker]
    (its keys win) and may open other sections."""
    syms = ", ".join(f'"{s}"' for s in symbols)
    defaults = {
        "server_time_poll_seconds": "0.1",
        "reconnect_initial_seconds": "0.05",
        "connect_timeout_seconds": "5.0",
        "history_requests_per_minute": "60000.0",
        # the simulated gateway sends a minute's closed bar at its close, before it tells any
        # later time, so the step-mode drivers (which stop the clock at the close) need none
        "bar_grace_seconds": "0.0",
    }
    head = extra.split("[", 1)[0]
    lines = [f"{k} = {v}" for k, v in defaults.items() if f"{k} =" not in head]
    path.write_text(
        f"symbols = [{syms}]\n\n[broker]\n" + "\n".join(lines) + "\n" + extra, encoding="utf-8"
    )
    return path


FORMING_BARS = 5.0  # the tests' gateway revises the forming bar as IB does, unless told otherwise


@asynccontextmanager
async def gateway(
    source: Any, start: str, *, forming_bars: float = FORMING_BARS, **cfg: Any
) -> AsyncIterator[GatewayServer]:
    """A gateway in step mode on a free port, with `forming-bars` on (`forming_bars=0`: off)."""
    cfg.setdefault("step_mode", True)
    cfg.setdefault("port", 0)
    faults = cfg.setdefault("faults", Faults())
    faults.forming_bars = faults.forming_bars or forming_bars
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


def trade_args(cfg: Path, port: int, out: Path, *, console: bool = False) -> list[str]:
    """`momentumbot trade` for one session as its own process, client id 7."""
    args = [
        sys.executable, "-m", "momentumbot.cli", "trade", "--config", str(cfg), "--port",
        str(port), "--client-id", "7", "--out", str(out), "--sessions", "1",
    ]  # fmt: skip
    return args if console else [*args, "--no-console"]


def spawn_trader(
    cfg: Path, port: int, out: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`trade_args` started, its output appended to `<out>-stderr.txt` beside the run folder."""
    with open(out.parent / f"{out.name}-stderr.txt", "ab") as log:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.Popen(trade_args(cfg, port, out), stdout=log, stderr=log, env=full_env)


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
        self,
        gw: GatewayServer,
        bot_progress: Callable[[], int],
        bot_alive: Callable[[], bool],
        past_close_seconds: float = 0.0,
    ) -> None:
        self.gw = gw
        self.bot_progress = bot_progress
        self.bot_alive = bot_alive
        # stop the clock this long after each minute's close (a bot with a bar grace needs it)
        self.past_close_ns = int(past_close_seconds * NS)

    async def settle(self, timeout: float = 20.0) -> None:
        target = self.gw.now_ns()
        if self.past_close_ns:
            target = target // NS_MIN * NS_MIN  # mid-minute: that minute cannot be stepped yet
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
            past = self.past_close_ns
            nxt = min(target, ((self.gw.now_ns() - past) // NS_MIN + 1) * NS_MIN + past)
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


# ---------------------------------------------------------------- in-process sessions


@dataclass
class Session:
    """A gateway in step mode and a Trader on the same loop, with a driver."""

    gw: GatewayServer
    trader: Any
    task: asyncio.Task[Any]
    drv: Driver
    out: Path

    async def finish(self, timeout: float = 30.0) -> Any:
        """Wait for the trader to end (after its sessions or a stop); its outcome or error."""
        await wait_for(lambda: self.task.done(), timeout, "the trader to end")
        return self.task.result()

    async def stop(self, reason: str = "test") -> Any:
        self.trader.kill.trip(reason)
        self.trader.wake()
        # the flatten fills in the next bar: move the clock until the trader is done
        for _ in range(30):
            if self.task.done():
                break
            await asyncio.sleep(0.05)
            if not self.task.done() and self.gw.session_open:
                await self.gw.advance(60)
        return await self.finish()


@asynccontextmanager
async def trading(
    source: Any,
    day: str,
    out: Path,
    cfg: Any,
    *,
    client_id: int = 7,
    gw_kwargs: dict[str, Any] | None = None,
    **opts: Any,
) -> AsyncIterator[Session]:
    from momentumbot.app.trade import TradeOptions, Trader

    async with gateway(source, day, **(gw_kwargs or {})) as gw:
        opts.setdefault("console", False)
        opts.setdefault("sessions", 1)
        opts.setdefault("market_data_wait_seconds", 2.0)
        tr = Trader(cfg, TradeOptions(out_dir=out, port=gw.port, client_id=client_id, **opts))
        task = asyncio.create_task(tr.run(), name="trader")
        drv = Driver(gw, lambda: tr.progress_ns, lambda: not task.done())
        s = Session(gw, tr, task, drv, out)
        try:
            yield s
        finally:
            if not task.done():
                tr.kill.trip("test teardown")
                tr.wake()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(task), 10)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def check_books(trader: Any, gw: GatewayServer, account: str = "DU0000001") -> None:
    """No order lost or duplicated, and the journal's positions and cash are the gateway's."""
    from momentumbot.journal.journal import Journal
    from momentumbot.journal.reconcile import parse_ref

    e = trader.engine
    acct = gw.broker.accounts[account]
    gw_pos = {s: p.qty for s, p in acct.held().items() if p.qty}
    assert e.positions() == gw_pos, f"positions: journal {e.positions()} gateway {gw_pos}"
    j = Journal.open(trader.run_dir / JOURNAL_NAME, create=False)
    try:
        start_cash = int(j.get("account_cash_start") or 0)
        initial = round(trader.cfg.portfolio.initial_cash * 1e6)
        assert start_cash + e.cash_micro - initial == acct.cash_micro, (
            f"cash: journal {start_cash + e.cash_micro - initial} gateway {acct.cash_micro}"
        )
        orders = j.orders()
        fills = j.fills()
    finally:
        j.close()
    placed = assert_no_ref_placed_twice(gw)
    by_ref = {o.order_ref: o for o in orders.values()}
    for ref in placed:
        parsed = parse_ref(ref)
        assert parsed is not None and parsed[0] == trader.run_id, ref
        assert ref in by_ref, f"{ref} reached the gateway but is not in the journal"
    gw_fills = {f.exec_id: f for f in gw.broker.fills if f.account == account}
    assert set(gw_fills) == set(fills), (
        f"fills: gateway only {set(gw_fills) - set(fills)}, journal only {set(fills) - set(gw_fills)}"
    )
    for f in fills.values():
        assert f.fill_index is not None, f"fill {f.exec_id} never booked"
        g = gw_fills[f.exec_id]
        assert (f.quantity, f.price) == (g.qty, g.price)
        assert f.commission_micro == g.commission_micro, f.exec_id
    assert e.fill_count() == len(fills)
    working_gw = {o.order_ref for o in gw.broker.working() if o.account == account}
    working_engine = {by_ref_key for by_ref_key, o in by_ref.items() if e.orders.status[o.oid] == 0}
    assert working_gw == working_engine, f"working: gateway {working_gw} engine {working_engine}"


def placed_refs(gw: GatewayServer) -> dict[str, int]:
    """How many times the gateway's record shows each orderRef placed."""
    placed: dict[str, int] = {}
    for ev in gw.record.events:
        if ev.get("event") == "order" and ev.get("what") == "placed":
            ref = ev["order_ref"]
            placed[ref] = placed.get(ref, 0) + 1
    return placed


def assert_no_ref_placed_twice(gw: GatewayServer) -> dict[str, int]:
    """The gateway's record never shows one orderRef placed twice (idempotent sends); the
    count of each placed orderRef."""
    placed = placed_refs(gw)
    dupes = {r: n for r, n in placed.items() if n > 1}
    assert not dupes, f"orders placed more than once: {dupes}"
    return placed


@dataclass
class JournalView:
    """What check_books needs, rebuilt from a run folder's journal (the bot ran elsewhere)."""

    engine: Any
    run_dir: Path
    cfg: Any
    run_id: str


def replayed(run_dir: Path) -> JournalView:
    from momentumbot.config.loader import load_config
    from momentumbot.engine.live import LiveEngine
    from momentumbot.journal.journal import Journal
    from momentumbot.journal.replay import replay

    cfg = load_config(run_dir / "config.toml")
    engine = LiveEngine(cfg, list(cfg.symbols))
    j = Journal.open(run_dir / JOURNAL_NAME, create=False)
    try:
        replay(j, engine)
        run_id = j.get("run_id") or ""
    finally:
        j.close()
    return JournalView(engine, run_dir, cfg, run_id)

"""The trader on the in-memory fake broker (`momentumbot.testing.fake_broker`): a market of
synthetic bars in memory, a clock the test moves, and a driver that waits for the trader by
yielding to the event loop (no TCP, no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from momentumbot.app.trade import TradeOptions, Trader
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.synthetic import default_symbols, generate_bars, synthetic_sessions
from momentumbot.execution.broker_protocol import BrokerListener
from momentumbot.execution.costs import cost_params
from momentumbot.journal import journal as jr
from momentumbot.testing import MemoryBarSource
from momentumbot.testing.fake_broker import FakeBroker

CAL = TradingCalendar("XNYS")
SYMBOLS = default_symbols(6)
DAY = "2024-01-03"


@functools.cache
def market() -> MemoryBarSource:
    return MemoryBarSource(generate_bars(SYMBOLS, synthetic_sessions("2024-01-02", 3), seed=5))


def ny(day: str, hhmm: str) -> int:
    return int(pd.Timestamp(f"{day} {hhmm}", tz="America/New_York").tz_convert("UTC").value)


def hhmm(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").strftime("%H:%M")


def config(execution: dict[str, Any] | None = None, **broker: Any) -> AppConfig:
    # the fake sends a minute's bars at its close and says that time: no grace needed
    b = {"reconnect_initial_seconds": 0.001, "server_time_poll_seconds": 5.0,
         "bar_grace_seconds": 0.0, **broker}  # fmt: skip
    return AppConfig.model_validate({"symbols": SYMBOLS, "broker": b, "execution": execution or {}})


@dataclass
class FakeRun:
    trader: Trader
    fake: FakeBroker
    task: asyncio.Task[Any]

    async def until(self, pred: Callable[[], bool], what: str, turns: int = 200_000) -> None:
        """Yield to the event loop until `pred()` (the trader runs in between)."""
        for _ in range(turns):
            if pred():
                return
            if self.task.done():
                self.task.result()  # its error, if any
                if pred():
                    return
                raise AssertionError(f"the trader ended before {what}")
            await asyncio.sleep(0)
        raise AssertionError(f"not reached: {what}")

    async def settle(self) -> None:
        """The trader has dealt with every minute closed on the broker's clock."""
        self.trader.kick_time()
        now = self.fake.now_ns
        await self.until(
            lambda: self.trader.progress_ns >= now or self.task.done(), f"progress to {hhmm(now)}"
        )

    async def step(self, minutes: int = 1) -> None:
        for _ in range(minutes):
            self.fake.advance()
            await self.settle()

    async def run_to(self, at: str) -> None:
        while hhmm(self.fake.now_ns) < at:
            await self.step()

    async def until_orders_working(self) -> None:
        e = self.trader.engine
        assert e is not None
        while not e.working_orders():
            await self.step()
            assert hhmm(self.fake.now_ns) < "15:30", "no order was working all day"

    async def stop(self) -> Any:
        """A stop (flatten on stop by default): the flatten fills in the next bars."""
        self.trader.kill.trip("test")
        self.trader.wake()
        for _ in range(30):
            if self.task.done():
                break
            self.fake.advance()
            self.trader.kick_time()
            for _ in range(2000):
                if self.task.done():
                    break
                await asyncio.sleep(0)
        if not self.task.done():  # the session's report is written in a thread: real time
            await asyncio.wait_for(asyncio.shield(self.task), 120)
        return self.task.result()

    def check_books(self) -> None:
        """The journal's engine agrees with the broker: positions, cash, every fill booked
        once, and the orders working at the broker are the engine's working orders."""
        tr, fake = self.trader, self.fake
        e = tr.engine
        assert e is not None
        assert e.positions() == fake.positions
        j = jr.Journal.open(tr.run_dir / jr.JOURNAL_NAME, create=False)
        try:
            start = int(j.get("account_cash_start") or 0)
            fills = j.fills()
            orders = j.orders()
        finally:
            j.close()
        initial = round(tr.cfg.portfolio.initial_cash * 1e6)
        assert start + e.cash_micro - initial == fake.cash_micro
        assert set(fills) == {x.exec_id for x in fake.executions}
        assert all(f.fill_index is not None for f in fills.values())
        assert e.fill_count() == len(fake.executions)
        by_ref = {o.order_ref: o for o in orders.values()}
        assert set(fake.orders) <= set(by_ref), "every order at the broker is journaled"
        assert len(fake.placed) == len(set(fake.placed)), "no order was placed twice"
        working = {r for r, o in fake.orders.items() if o.status == "working"}
        assert working == {r for r, o in by_ref.items() if e.orders.status[o.oid] == 0}


@asynccontextmanager
async def fake_run(
    out: Path,
    cfg: AppConfig | None = None,
    *,
    start: str = "09:25",
    fake: FakeBroker | None = None,
    **opts: Any,
) -> AsyncIterator[FakeRun]:
    """A trader on a new fake broker, or on `fake` (a restart: the broker keeps its state)."""
    fakes: list[FakeBroker] = []
    cfg = cfg or config()

    def make(listener: BrokerListener) -> FakeBroker:
        if fake is not None:
            fake.listener = listener
            fakes.append(fake)
            return fake
        new = FakeBroker(
            listener, market(), now_ns=ny(DAY, start), params=cost_params(cfg.execution)
        )
        fakes.append(new)
        return new

    opts.setdefault("console", False)
    opts.setdefault("sessions", 1)
    tr = Trader(cfg, TradeOptions(out_dir=out, **opts), calendar=CAL, broker=make)
    task = asyncio.create_task(tr.run())
    run = FakeRun(tr, fakes[0], task)
    try:
        await run.until(lambda: tr.session is not None and tr.conn.can_trade, "trading")
        await run.settle()
        yield run
    finally:
        if not task.done():
            with contextlib.suppress(BaseException):
                await run.stop()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

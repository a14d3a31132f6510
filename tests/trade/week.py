"""A replayed week for the multi-day tests: synthetic minute bars over a weekday night, a half
day (2024-07-03), a market holiday (07-04) and a weekend, the backtest of the same bars, and a
driver that walks the gateway's clock through sessions (minute by minute, in lockstep with
the bot) and nights (an hour at a time), stopping at fault points on the way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pandas as pd

from momentumbot.gateway.server import GatewayServer, HistSub, ny_ns
from tests.trade.harness import progress, wait_for

NS = 1_000_000_000
NS_MIN = 60 * NS
HOUR = 3600 * NS
STORE_START = "2024-07-01"  # the warm-up session; trading starts the next one
STORE_SESSIONS = 6  # 07-01, 02, 03 (half day), 05, 08, 09
DAYS = ("2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08")
CLOSE = {"2024-07-03": (13, 0)}  # a half day
CLIENT_ID = 7


def at(day: str, hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return ny_ns(pd.Timestamp(day), int(h), int(m))


def close_ns(day: str) -> int:
    h, m = CLOSE.get(day, (16, 0))
    return ny_ns(pd.Timestamp(day), h, m)


def gateway_ready(gw: GatewayServer, n_symbols: int, client_id: int = CLIENT_ID) -> bool:
    """The bot is connected and has every bar stream open (what the gateway sees)."""
    s = gw.client(client_id)
    if s is None or not s.ready or s.closed:
        return False
    return sum(isinstance(sub, HistSub) for sub in s.subs.values()) >= n_symbols


def journal_trading(run_dir: Path) -> bool:
    return progress(run_dir).get("state") == "trading"


Action = Callable[[], Awaitable[None]]


class WeekDriver:
    """Walks the clock from the gateway's start through DAYS, running `faults[ns]` when the
    clock reaches ns (before the bot is given the next minute)."""

    def __init__(
        self,
        gw: GatewayServer,
        bot_progress: Callable[[], int],
        bot_alive: Callable[[], bool],
        ready: Callable[[], bool],
        faults: dict[int, Action] | None = None,
    ) -> None:
        self.gw = gw
        self.bot_progress = bot_progress
        self.bot_alive = bot_alive
        self.ready = ready
        self.faults = dict(faults or {})

    async def settle(self, timeout: float = 30.0) -> None:
        target = self.gw.now_ns() // NS_MIN * NS_MIN  # mid-minute: the minute cannot be stepped yet
        await wait_for(
            lambda: (self.bot_progress() >= target and self.ready()) or not self.bot_alive(),
            timeout,
            f"the bot to catch up with {pd.Timestamp(target, tz='UTC').tz_convert('America/New_York')}",
        )

    async def _to(self, target: int, step: int) -> None:
        while self.gw.now_ns() < target and self.bot_alive():
            now = self.gw.now_ns()
            nxt = min(target, (now // step + 1) * step)
            due = [t for t in self.faults if now < t <= nxt]
            if due:
                nxt = min(due)
            await self.gw.advance_to(nxt)
            action = self.faults.pop(nxt, None)
            if action is not None:
                await action()
            await self.settle()

    async def run_week(self, days: Sequence[str] = DAYS) -> None:
        await self.settle(90)
        for i, day in enumerate(days):
            await self._to(at(day, "09:00"), HOUR)
            await self._to(close_ns(day) + NS_MIN, NS_MIN)
            if i + 1 < len(days):
                await self._to(at(days[i + 1], "09:00"), HOUR)
            if not self.bot_alive():
                return


def compare_with_backtest(trade_dir: Path, bt_dir: Path) -> None:
    """Same orders and same fills as the backtest of the same bars, session by session."""
    b_orders = pd.read_csv(bt_dir / "orders.csv")
    t_orders = pd.read_csv(trade_dir / "orders.csv")
    cols = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
            "filled_quantity"]  # fmt: skip
    for day in DAYS:
        b = b_orders[b_orders.decided_at.str.startswith(day)][cols].reset_index(drop=True)
        t = t_orders[t_orders.decided_at.str.startswith(day)][cols].reset_index(drop=True)
        assert len(b) > 0, f"the backtest has no orders on {day}"
        pd.testing.assert_frame_equal(t, b, obj=f"orders of {day}")
    pd.testing.assert_frame_equal(t_orders[cols], b_orders[cols], obj="orders")
    b_fills = pd.read_csv(bt_dir / "fills.csv")
    t_fills = pd.read_csv(trade_dir / "fills.csv")
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    for day in DAYS:
        b = b_fills[b_fills.time.str.startswith(day)][cols].reset_index(drop=True)
        t = t_fills[t_fills.time.str.startswith(day)][cols].reset_index(drop=True)
        assert len(b) > 0, f"the backtest has no fills on {day}"
        pd.testing.assert_frame_equal(
            t, b, check_exact=False, rtol=0, atol=1e-9, obj=f"fills of {day}"
        )
    pd.testing.assert_frame_equal(
        t_fills[cols], b_fills[cols], check_exact=False, rtol=0, atol=1e-9, obj="fills"
    )

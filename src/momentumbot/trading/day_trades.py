"""A margin account under the pattern-day-trader limit ([broker] allow_pdt_limited): before
every step the account's DayTradesRemaining (as IB reports it) decides whether new buys may go
out. No day trade left: new buys halt (journal meta `buys_halted`, the console and the log
say why; sells still go out). Otherwise each position open or being bought (sold today, it is
a day trade) takes one of the day trades left, and only as many new buys as remain may go
out, so no buy can become a fourth day trade."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.trading.run import RunState

log = logging.getLogger("momentumbot.trade")


@dataclass
class DayTradeWatch:
    broker: Broker
    engine: LiveEngine
    journal: jr.Journal
    run: RunState
    enabled: bool = False  # the run trades under the limit (guards.check_account_type)
    _waiting: str = ""

    def check(self) -> tuple[int, str]:
        """Before a step: how many new buys may go out this minute (-1: any) and why not more."""
        if not self.enabled or self.run.buys_halted:
            return -1, ""
        left = self.broker.account_status().day_trades_remaining
        if left is None or left < 0:
            return -1, ""
        if left == 0:
            self._halt(
                "no day trade left (IB's DayTradesRemaining is 0: 3 day trades in 5 business "
                "days under 25,000 USD, the pattern-day-trader rule); new buys halted"
            )
            return -1, ""
        e = self.engine
        held = sum(
            1
            for s in range(e.n)
            if e.st.position[s] > 0 or (e.st.working[s] >= 0 and e.orders.side[e.st.working[s]] > 0)
        )
        why = (
            f"pattern-day-trader limit: {left} day trade(s) left, {held} position(s) open or "
            "being bought, each a day trade when sold today"
        )
        if held >= left and why != self._waiting:
            log.warning("%s; new buys wait", why)
        self._waiting = why if held >= left else ""
        return max(left - held, 0), why

    def _halt(self, why: str) -> None:
        run, j = self.run, self.journal
        log.error("HALTED: %s. Sells still go out.", why)
        run.buys_halted = why
        with j.transaction():
            j.set("buys_halted", why)
            j.add_input(rp.NOTE, None, None, {"buys_halted": why})

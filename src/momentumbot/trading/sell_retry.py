"""Sells the broker refused or ended, sent again; and the reject breaker.

A sell (exit, flatten, the daily-loss flatten; not a rebalance, which the next rebalance
decides again) that the broker rejected, or ended while the
engine still counted on it, leaves a position the strategy meant to close. It is re-issued as
a market order (journaled as a `reissue` input, so a replay decides the same) after
`sell_retry_seconds` of server time, the wait doubling with each reject up to
`sell_retry_max_seconds`; when the reject's text names the order's value or size, each try
sells half as much as the one before (the rest follows when it fills). After
`sell_rejects_before_halt` rejects of one symbol's sells, new buys halt (journal meta `buys_halted`; sells still go out;
until `trade --rearm`) and the bot keeps trying to sell, saying so at every try.

The breaker: `buy_breaker_rejects` rejects with the same reason (numbers aside) in one session
halt new buys the same way (sells still go out): a broker that refuses everything should not be fed more buys."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.orders import Side
from momentumbot.domain.units import NS
from momentumbot.engine.live import LiveEngine, StepResult
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.notify import Event
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState

log = logging.getLogger("momentumbot.trade")

RETRIED = ("exit", "flatten")  # a refused rebalance sell is left to the next rebalance
_NUMBERS = re.compile(r"[\d.,]+")


def says_value_or_size(text: str) -> bool:
    """The reject's text names the order's value or size: a smaller order may pass."""
    t = text.lower()
    return any(w in t for w in ("value", "size", "quantity", "too large", "exceeds"))


def reject_key(why: str) -> str:
    """A reject's reason with its numbers taken out (order ids, prices, amounts)."""
    return _NUMBERS.sub("#", why.strip().lower())


@dataclass
class _Pending:
    reason: str  # exit | flatten: the re-issued order's reason (and ref prefix)
    rejects: int = 0
    split: int = 1  # each try sells position / split
    next_ns: int = 0
    last_why: str = ""


@dataclass
class SellRetry:
    """See the module docstring. `tick()` sends what is due; the session calls it after
    every step and every server-time answer."""

    engine: LiveEngine
    journal: jr.Journal
    router: OrderRouter
    run: RunState
    cfg: BrokerConfig
    journal_new: Callable[[StepResult, int, dict[int, str]], None]
    pending: dict[str, _Pending] = field(default_factory=dict)  # symbol -> retry state
    _breaker: dict[str, int] = field(default_factory=dict)  # reject key -> count this session
    _breaker_session: object = None
    reissued: int = 0

    # ---------------------------------------------------------------- events

    def ended_by_broker(self, oid: int, why: str, *, rejected: bool) -> None:
        """A working order of the engine's ended at the broker (rejected, or cancelled
        without the engine asking): a sell with a position left is tried again."""
        sym, side, _q, reason, _d, _s, _f = self.engine.order_row(oid)
        if rejected:
            self._count_for_breaker(why)
        if side != Side.SELL or reason not in RETRIED or self.engine.positions().get(sym, 0) <= 0:
            return
        p = self.pending.setdefault(sym, _Pending(reason=reason))
        p.last_why = why
        if rejected:
            p.rejects += 1
            if says_value_or_size(why):
                p.split *= 2
        wait = 0.0
        if p.rejects:
            wait = min(self.cfg.sell_retry_seconds * 2 ** (p.rejects - 1),
                       self.cfg.sell_retry_max_seconds)  # fmt: skip
        p.next_ns = self.run.server_ns + int(wait * NS)
        log.warning(
            "sell of %s (order %d) ended at the broker: %s; trying again in %gs%s",
            sym, oid, why, wait, f", 1/{p.split} of the position at a time" if p.split > 1 else "",
        )  # fmt: skip
        if rejected:
            self.run.alerts.event(
                Event.SELL_REJECTED, f"sell of {sym} rejected",
                f"{why}; trying again in {wait:g} s (reject {p.rejects})", key=f"sell {sym}",
            )  # fmt: skip
        if p.rejects >= self.cfg.sell_rejects_before_halt:
            self._halt(
                f"the sells of {sym} were rejected {p.rejects} times (last: {why}); "
                f"new buys halted, still trying to sell {sym}"
            )

    def _count_for_breaker(self, why: str) -> None:
        e = self.engine
        session = e.sessions[-1] if e.sessions else None
        if session != self._breaker_session:
            self._breaker_session = session
            self._breaker.clear()
        key = reject_key(why)
        n = self._breaker[key] = self._breaker.get(key, 0) + 1
        if n >= self.cfg.buy_breaker_rejects:
            self._halt(f"{n} orders rejected this session for the same reason ({why}); "
                       "new buys halted")  # fmt: skip

    def _halt(self, why: str) -> None:
        run, j = self.run, self.journal
        log.error("HALTED: %s. Check the account at IB, then `momentumbot trade --rearm`.", why)
        if run.buys_halted:
            return
        run.buys_halted = why
        with j.transaction():
            j.set("buys_halted", why)
            j.add_input(rp.NOTE, None, None, {"buys_halted": why})

    # ---------------------------------------------------------------- sending

    def tick(self) -> None:
        """Re-issue every sell that is due (in session, connection able to trade, no working
        order for the symbol); forget symbols that are flat."""
        if not self.pending or not self.engine.started or not self.router.can_trade():
            return
        e, now = self.engine, self.run.server_ns
        positions = e.positions()
        for sym, p in list(self.pending.items()):
            pos = positions.get(sym, 0)
            if pos <= 0:
                del self.pending[sym]
                continue
            if now < p.next_ns or e.st.working[e.symbols.index(sym)] >= 0:
                continue
            if not e.session_open_ns <= now < e.session_close_ns:
                continue
            self._reissue(sym, max(1, math.ceil(pos / p.split)), p)

    def _reissue(self, sym: str, qty: int, p: _Pending) -> None:
        e, j = self.engine, self.journal
        decided = self.run.server_ns
        info = {"symbol": sym, "qty": qty, "reason": p.reason}
        with j.transaction(durable=True):  # an order intent, as a step's
            j.add_input(rp.REISSUE, decided, None, info)
            res = e.reissue_sell(sym, qty, p.reason, decided)
            self.journal_new(res, decided, {res.new_orders[0]: f"re-issued: {p.last_why}"})
        self.reissued += 1
        if p.rejects >= self.cfg.sell_rejects_before_halt:
            log.error(
                "HALTED, still selling: %s %d re-issued after %d rejects", sym, qty, p.rejects
            )
        else:
            log.warning("re-issuing the sell of %s: %d shares", sym, qty)
        for oid in res.new_orders:
            self.router.place(oid, market=True)

"""Stepping the engine: each complete minute is booked (fills due), stepped, passed through
the risk gate, journaled with its new orders and handed to the router; the day's loss is
checked after every step. Also the stop: a flatten or a cancel-all decided at the next
minute, journaled before it is sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from momentumbot.config.schema import AppConfig
from momentumbot.domain.orders import OrderState as St
from momentumbot.domain.orders import Side
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine.live import LiveEngine, StepResult
from momentumbot.journal import journal as jr
from momentumbot.journal import replay as rp
from momentumbot.journal.reconcile import make_ref
from momentumbot.trading import risk_gate
from momentumbot.trading.booking import FillBook
from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState

log = logging.getLogger("momentumbot.trade")


@dataclass
class Stepper:
    engine: LiveEngine
    journal: jr.Journal
    router: OrderRouter
    fills: FillBook
    minutes: MinuteAssembler
    conn: ConnectionState
    run: RunState
    cfg: AppConfig
    blocked: np.ndarray
    run_id: str
    sessions: int | None  # stop after this many sessions (None: run on)
    catchup_until: Callable[[], int]  # minutes closing by then were decided before the start
    after_steps: Callable[[], None]  # the console
    sends_synced: int = 0
    _session_of_equity: object = None
    session_start_equity: float | None = None

    # ---------------------------------------------------------------- minutes

    def try_step(self) -> None:
        """Step every complete minute while the connection can trade."""
        e, run = self.engine, self.run
        if not e.started or run.fatal:
            return
        stepped = False
        while self.conn.can_trade and not run.done:
            t = e.next_label
            if not self.minutes.complete(t, run.server_ns, e.session_open_ns):
                break
            self.step(t)
            stepped = True
        if not stepped:
            return
        run.step_seq += 1
        if self.router.sends != self.sends_synced:
            # a round trip proves the broker has read the orders before we report progress
            self.sends_synced = self.router.sends
            run.kick_time()
        else:
            run.time_wanted = False
            self.set_progress(e.next_label)
        self.after_steps()

    def set_progress(self, progress: int) -> None:
        """The bot has dealt with every minute before `progress` (tests and monitors wait
        on it; the journal keeps it as meta `progress_ns`)."""
        if progress > self.run.progress_ns:
            self.run.progress_ns = progress
            self.journal.set_many({"progress_ns": str(progress)})

    def step(self, t: int) -> None:
        e, j, run = self.engine, self.journal, self.run
        t0 = time.perf_counter()
        self.fills.book_due(t)
        row = self.minutes.pop(t)
        catchup = t + NS_PER_MINUTE <= self.catchup_until()
        # a minute of a session that has closed by now (the bot was down): only sells go out
        closed_session = e.session_close_ns <= run.server_ns
        with j.transaction(durable=True):
            data = jr.pack(row.o, row.c, row.v)
            res = e.step(t, row.o, row.c, row.v)
            adjust = risk_gate.gate(
                e, res.new_orders, catchup=catchup, closed_session=closed_session,
                blocked=np.ones_like(self.blocked) if run.buys_halted else self.blocked,
                halted=run.halted,
            )  # fmt: skip
            for a in adjust:
                if a[1] <= 0:
                    e.veto(a[0])
                else:
                    e.resize(a[0], a[1])
            j.add_input(rp.STEP, t, data, {"adjust": adjust} if adjust else {})
            j.add_mark(t + NS_PER_MINUTE, e.cash_micro, e.positions_value(), e.positions())
            self.journal_new(res, t + NS_PER_MINUTE, {a[0]: a[2] for a in adjust})
            self.check_daily_loss(t, res)
        self.router.dispatch(res.ended_orders, res.new_orders)
        run.stats.step_seconds.append(time.perf_counter() - t0)
        if res.session_ended:
            log.info(
                "session %s done: equity %.2f, positions %s",
                e.sessions[-1].date(), e.equity(), e.positions() or "none",
            )  # fmt: skip
            if self.sessions is not None and e.sessions_completed >= self.sessions:
                run.done = True
                run.stop_reason = run.stop_reason or f"{e.sessions_completed} sessions done"

    def journal_new(self, res: StepResult, decided: int, why: dict[int, str]) -> None:
        e, j, now = self.engine, self.journal, self.run.server_ns
        order_type = "LMT" if self.cfg.broker.order_type == "marketable_limit" else "MKT"
        for oid in res.new_orders:
            sym, side, qty, reason, dec, status, _f = e.order_row(oid)
            state = St.INTENT if status == "working" else St.SKIPPED
            detail = why.get(oid, "") or ("cost filter" if status == "skipped" else "")
            j.add_order(
                oid, make_ref(reason, self.run_id, oid), sym, Side(side).label, qty, reason, dec,
                state, order_type=order_type if state == St.INTENT else None,
                server_ns=now, detail=detail,
            )  # fmt: skip
            self.router.start(oid, state)
        for oid in res.ended_orders:
            st = self.router.state.get(oid)
            if st == St.INTENT:
                self.router.set_state(oid, St.LOST, "ended before it was sent")
            elif st not in jr.DONE_STATES:
                j.order_event(oid, "cancel", "the engine replaced or cancelled it", now)

    def check_daily_loss(self, t: int, res: StepResult) -> None:
        """The minute step halts on the daily loss (risk.checks) with its flatten among the
        step's new orders; the run stays halted (journal meta `halted`) until `trade --rearm`."""
        e, j, run = self.engine, self.journal, self.run
        day = e.sessions[-1]
        if self._session_of_equity != day:
            self._session_of_equity = day
            self.session_start_equity = e.session_start_equity()
            ref_day, _, ref_equity = (j.get("loss_reference") or "").partition("|")
            if ref_day == str(day.date()) and ref_equity:
                self.session_start_equity = float(ref_equity)
        if not res.halt or run.halted:
            return
        log.error("risk: %s: flattening and halting until `momentumbot trade --rearm`", res.halt)
        run.halted = res.halt
        j.set("halted", res.halt)
        j.add_input(rp.NOTE, t, None, {"halt": res.halt})

    # ---------------------------------------------------------------- the stop

    def stop_trading(self, reason: str, *, flatten: bool) -> None:
        """Flatten (or cancel every working order) at the next minute."""
        e, j = self.engine, self.journal
        if not e.started:
            self.run.done = True
            return
        decided = e.next_label
        kind = rp.FLATTEN if flatten else rp.CANCEL_ALL
        with j.transaction():
            j.add_input(rp.NOTE, decided, None, {"stop": reason})
            j.add_input(kind, decided, None, {"reason": reason})
            res = e.flatten(decided) if kind == rp.FLATTEN else e.cancel_all(decided)
            self.journal_new(res, decided, {})
        self.router.dispatch(res.ended_orders, res.new_orders)

    def stop_settled(self, *, flatten: bool) -> bool:
        if not self.engine.started:
            return True
        return not self.engine.working_orders() or (not flatten and not self.router.held)

"""Reconciliation at start and after every reconnect: the journal's and the engine's orders,
fills, positions and cash against the broker's snapshot (`journal.reconcile` decides, pure);
this module acts on what can be explained and stops trading on what cannot."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from momentumbot.config.schema import AppConfig
from momentumbot.domain.orders import OrderState as St
from momentumbot.domain.orders import Side
from momentumbot.domain.units import EXCHANGE_TZ, usd_to_micro
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import Broker
from momentumbot.journal import journal as jr
from momentumbot.journal.reconcile import EngineOrder, reconcile
from momentumbot.journal.reconcile_days import ADOPTED_PREFIX, cost_basis
from momentumbot.trading.booking import FillBook
from momentumbot.trading.initial_cash import check_initial_cash
from momentumbot.trading.order_events import OrderEvents
from momentumbot.trading.routing import OrderRouter
from momentumbot.trading.run import RunState
from momentumbot.trading.terminal import EVENT

log = logging.getLogger("momentumbot.trade")


def ny_date(ns: int) -> dt.date:
    """The IB day (New York date) of a UTC ns time."""
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).astimezone(ZoneInfo(EXCHANGE_TZ)).date()


@dataclass
class Reconciler:
    broker: Broker
    journal: jr.Journal
    engine: LiveEngine
    router: OrderRouter
    fills: FillBook
    events: OrderEvents
    run: RunState
    cfg: AppConfig
    run_id: str
    account: str

    def engine_orders(self) -> dict[int, EngineOrder]:
        e = self.engine
        out: dict[int, EngineOrder] = {}
        pending_qty = self.fills.pending_quantity()
        for oid, o in self.journal.orders().items():
            if oid >= e.order_count():
                continue
            sym, side, qty, _reason, dec, status, filled = e.order_row(oid)
            out[oid] = EngineOrder(
                oid=oid,
                symbol=sym,
                side=side,
                quantity=qty,
                filled=filled + pending_qty.get(oid, 0),
                working=status == "working",
                state=self.router.state.get(oid, o.state),
                order_ref=o.order_ref,
                decided_ns=dec,
            )
        return out

    def _expected_cash(self) -> int | None:
        start_cash = self.journal.get("account_cash_start")
        if start_cash is None:
            return None
        initial = usd_to_micro(self.cfg.portfolio.initial_cash)
        return int(start_cash) + self.engine.cash_micro - initial + self.fills.pending_cash_micro()

    def _earlier_day(self) -> str | None:
        """The IB day (New York date) of the journal's last progress when it is earlier than
        the server's: IB no longer reports that day's executions and completed orders."""
        progress = int(self.journal.get("progress_ns") or 0)
        if not progress or not self.run.server_ns:
            return None
        then, now = ny_date(progress - 1), ny_date(self.run.server_ns)
        return str(then) if then < now else None

    async def run_once(self, why: str) -> bool:
        """Compare with the broker; act on what can be explained; stop on what cannot
        (False, with `run.fatal` saying why)."""
        snap = await self.broker.snapshot()
        j = self.journal
        r = reconcile(
            run_id=self.run_id,
            client_id=self.broker.client_id,
            symbols=list(self.engine.symbols),
            orders=self.engine_orders(),
            known_exec_ids=set(j.fills()),
            positions=self.fills.pending_positions(self.engine.positions()),
            snapshot=snap,
            expected_cash_micro=self._expected_cash(),
            earlier_day=(earlier := self._earlier_day()),
            fill_ns=int(j.get("progress_ns") or 0),
            basis=cost_basis(j.fills().values()) if earlier else None,
        )
        if earlier:
            log.warning(
                "reconcile (%s): the journal's last progress was on %s, an earlier IB day: "
                "IB no longer reports its executions; orders are explained by positions", why,
                earlier,
            )  # fmt: skip
        for w in r.warnings:
            log.warning("reconcile (%s): %s", why, w)
        if not r.agrees:
            self.run.fatal = (
                f"reconciliation ({why}) found what it cannot explain; not trading: "
                + "; ".join(r.mismatches)
            )
            log.error(self.run.fatal)
            self.run.done = True
            return False
        if j.get("account_cash_start") is None and (
            snap.cash_micro is not None or (snap.funds and not snap.funds.is_usd)
        ):
            # settled funds, in USD (the USD ledger and IB's rate for a non-USD base): unsettled
            # sale proceeds, and in a cash account other currencies, cannot pay for USD buys
            kind = self.cfg.broker.account_type or self.broker.account_status().account_type
            warning = check_initial_cash(
                self.cfg.portfolio.initial_cash, snap, self.account, kind or "margin"
            )
            if warning:
                log.warning("%s", warning)
            j.set_many({"account_cash_start": str(snap.cash_micro)})
        server = self.run.server_ns
        with j.transaction():
            for oid, rep in r.confirmed.items():
                j.update_order(
                    oid, server, ib_order_id=rep.ib_order_id, perm_id=rep.perm_id,
                    client_id=rep.client_id,
                )  # fmt: skip
                if self.router.state.get(oid) in (St.INTENT, St.SENT):
                    self.router.set_state(oid, St.WORKING, f"confirmed at IB ({why})")
            for oid, reason in r.ended:
                self.events.end_from_broker(oid, St.CANCELLED, f"{reason} ({why})")
        for ex in sorted(r.adopt, key=lambda e: (e.time_ns, e.exec_id)):
            log.warning(
                "reconcile (%s): adopting execution %s: %s %d %s @ %s%s",
                why, ex.exec_id, Side(ex.side).label, ex.quantity, ex.symbol, ex.price,
                " (not reported by IB: explained by its position, at IB's average cost or "
                "the price its cash implies)" if ex.exec_id.startswith(ADOPTED_PREFIX) else "",
            )  # fmt: skip
            self.run.stats.adopted += 1
            self.events.receive(ex, adopted=True)
        known_fills = j.fills()
        for ex in snap.executions:
            f = known_fills.get(ex.exec_id)
            if (
                f is not None
                and ex.commission_micro is not None
                and f.reported_commission_micro != ex.commission_micro
            ):
                self.events.on_commission(ex.exec_id, ex.commission_micro)
        for ref in r.cancel:
            log.warning("reconcile (%s): %s is working at IB but not for us: cancelling", why, ref)
            self.broker.cancel(ref)
        for oid in r.resend:
            log.warning("reconcile (%s): order %d never reached IB: sending it", why, oid)
            self.run.stats.resent += 1
            self.router.resend(oid)
        self.broker.adopt_open_orders()
        log.info("reconcile (%s): %s", why, r.summary(), extra=EVENT)
        return True

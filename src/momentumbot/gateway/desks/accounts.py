"""The accounts desk: managed accounts, account values, positions and portfolio (on request, after
fills and re-marked every 5 market minutes), account summaries, and what-if answers."""

from __future__ import annotations

import logging
from collections.abc import Callable

from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import BUY, SELL, estimate_commission
from momentumbot.gateway import protocol as p
from momentumbot.gateway.account_values import AccountValues, account_values
from momentumbot.gateway.broker import SimBroker
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.desks.sessions import Handlers, SessionDesk, register
from momentumbot.gateway.market import NS_PER_MINUTE, MarketData, ny_time
from momentumbot.gateway.protocol import Reader, StockInfo

log = logging.getLogger("momentumbot.gateway")

MARK_KEYS = {
    "NetLiquidation",
    "EquityWithLoanValue",
    "GrossPositionValue",
    "UnrealizedPnL",
    "StockMarketValue",
    "NetLiquidationByCurrency",
}


class AccountDesk:
    def __init__(
        self,
        accounts: tuple[str, ...],
        broker: SimBroker,
        market: MarketData,
        sessions: SessionDesk,
        now: Callable[[], int],
    ) -> None:
        self.accounts = accounts
        self.broker = broker
        self.market = market
        self.sessions = sessions
        self.now = now

    def register(self, handlers: Handlers) -> None:
        register(
            handlers,
            {
                6: self._req_account_updates,
                17: self._req_managed_accounts,
                61: self._req_positions,
                62: self._req_account_summary,
                63: self._cancel_account_summary,
                64: self._cancel_positions,
                76: self._req_account_updates_multi,
                77: self._cancel_account_updates_multi,
            },
        )

    # ---- values

    def mark(self, symbol: str) -> float:
        """The last close (of a bar closed by now) of `symbol`."""
        i = self.market.last_closed_index(symbol, self.now())
        return float(self.market.bars(symbol).close[i]) if i >= 0 else 0.0

    def values(self, account: str) -> AccountValues:
        """The account's values (`gateway.account_values`) at the last closes."""
        return account_values(self.broker.accounts[account], self.mark)

    def account_values(self, account: str) -> list[tuple[str, str, str]]:
        return self.values(account).rows()

    def on_session_close(self) -> None:
        """Each account's equity at the close: tomorrow's previous-day equity."""
        for acct in self.broker.accounts.values():
            acct.rules.on_session_close(acct.equity_usd_micro(self.mark))

    def _portfolio_msg(self, account: str, symbol: str) -> bytes:
        pos = self.broker.accounts[account].position(symbol)
        price = self.mark(symbol)
        value = pos.qty * price
        return p.msg_portfolio(
            self.market.stocks[symbol],
            pos.qty,
            price,
            value,
            pos.avg_cost,
            value - pos.cost_micro / MICRO if pos.qty else 0.0,
            pos.realized_micro / MICRO,
            account,
        )

    def _account_time(self) -> bytes:
        return p.msg_account_time(ny_time(self.now()).strftime("%H:%M"))

    # ---- requests

    def _req_managed_accounts(self, s: ClientSession, r: Reader) -> None:
        s.send(p.msg_managed_accounts(self.accounts))

    def _req_positions(self, s: ClientSession, r: Reader) -> None:
        s.positions_subscribed = True
        for account in self.accounts:
            for sym, pos in sorted(self.broker.accounts[account].held().items()):
                s.send(p.msg_position(account, self.market.stocks[sym], pos.qty, pos.avg_cost))
        s.send(p.msg_position_end())

    def _cancel_positions(self, s: ClientSession, r: Reader) -> None:
        s.positions_subscribed = False

    def _not_managed(self, s: ClientSession, req_id: int, account: str) -> bool:
        if account in self.broker.accounts:
            return False
        s.error(req_id, 321, f"Error validating request: account {account} is not managed here")
        return True

    def _req_account_updates(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        subscribe = r.flag()
        account = r.text() or self.accounts[0]
        if not subscribe:
            s.account_updates = None
            return
        if self._not_managed(s, -1, account):
            return
        s.account_updates = account
        for key, value, currency in self.account_values(account):
            s.send(p.msg_account_value(key, value, currency, account))
        for sym in sorted(self.broker.accounts[account].held()):
            s.send(self._portfolio_msg(account, sym))
        s.send(self._account_time())
        s.send(p.msg_account_download_end(account))

    def _req_account_updates_multi(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        account = r.text() or self.accounts[0]
        r.text()  # modelCode
        if self._not_managed(s, req_id, account):
            return
        s.account_multi[req_id] = account
        for key, value, currency in self.account_values(account):
            s.send(p.msg_account_update_multi(req_id, account, key, value, currency))
        s.send(p.msg_account_update_multi_end(req_id))

    def _cancel_account_updates_multi(self, s: ClientSession, r: Reader) -> None:
        r.integer()
        s.account_multi.pop(r.integer(), None)

    def _req_account_summary(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        r.text()  # group
        tags = tuple(t.strip() for t in r.text().split(",") if t.strip())
        s.account_summary[req_id] = tags
        for account in self.accounts:
            self._send_summary(s, req_id, account, tags)
        s.send(p.msg_account_summary_end(req_id))

    def _send_summary(
        self, s: ClientSession, req_id: int, account: str, tags: tuple[str, ...]
    ) -> None:
        for tag, v, c in self.values(account).summary(tags):
            s.send(p.msg_account_summary(req_id, account, tag, v, c))

    def _cancel_account_summary(self, s: ClientSession, r: Reader) -> None:
        r.integer()
        s.account_summary.pop(r.integer(), None)

    # ---- pushes

    def push_position(self, account: str, symbol: str) -> None:
        pos = self.broker.accounts[account].position(symbol)
        msg = p.msg_position(account, self.market.stocks[symbol], pos.qty, pos.avg_cost)
        portfolio = self._portfolio_msg(account, symbol)
        for s in self.sessions.live():
            if s.positions_subscribed:
                s.send(msg)
            if s.account_updates == account:
                s.send(portfolio)

    def push_account(self, account: str, only_marks: bool = False) -> None:
        values = self.account_values(account)
        if only_marks:
            values = [v for v in values if v[0] in MARK_KEYS]
        for s in self.sessions.live():
            if s.account_updates == account:
                for key, value, currency in values:
                    s.send(p.msg_account_value(key, value, currency, account))
                s.send(self._account_time())
            for req_id, acct in s.account_multi.items():
                if acct == account:
                    for key, value, currency in values:
                        s.send(p.msg_account_update_multi(req_id, account, key, value, currency))
            for req_id, tags in s.account_summary.items():
                self._send_summary(s, req_id, account, tags)

    def push_everything(self) -> None:
        """Every held position and every account (after connectivity comes back)."""
        for account in self.accounts:
            for sym in sorted(self.broker.accounts[account].held()):
                self.push_position(account, sym)
            self.push_account(account)

    def refresh_marks(self) -> None:
        """Held positions are re-marked (portfolio and net liquidation) every 5 market minutes."""
        if (self.now() // NS_PER_MINUTE) % 5:
            return
        for account, acct in self.broker.accounts.items():
            held = acct.held()
            if not held:
                continue
            if not any(s.account_updates == account for s in self.sessions.live()):
                continue
            for sym in sorted(held):
                msg = self._portfolio_msg(account, sym)
                for s in self.sessions.live():
                    if s.account_updates == account:
                        s.send(msg)
            self.push_account(account, only_marks=True)

    # ---- what-if

    def what_if(
        self,
        s: ClientSession,
        order_id: int,
        stock: StockInfo,
        action: str,
        qty: float,
        order_type: str,
        lmt: float | None,
        aux: float | None,
        tif: str,
        account: str,
    ) -> None:
        """What an order would do to the account (a cash account: margin = position value) and
        its commission at the last close; nothing is placed."""
        account = account or self.accounts[0]
        if self._not_managed(s, order_id, account):
            return
        side = BUY if action.upper() == "BUY" else SELL
        price = self.mark(stock.symbol)
        month = ny_time(self.now())
        acct = self.broker.accounts[account]
        commission = estimate_commission(
            side,
            float(qty),
            price,
            acct.month_shares.get((month.year, month.month), 0.0),
            self.broker.params,
        )
        values = {k: v for k, v, _ in self.account_values(account)}
        equity, gross = float(values["NetLiquidation"]), float(values["GrossPositionValue"])
        change = side * qty * price
        margins = [gross, gross, equity, change, change, -commission]
        margins += [gross + change, gross + change, equity - commission]
        view = p.OrderView(
            order_id=order_id, client_id=s.client_id, perm_id=0, stock=stock, action=action.upper(),
            total_qty=int(qty), order_type=order_type.upper(), lmt_price=lmt, aux_price=aux,
            tif=tif or "DAY", account=account, order_ref="", outside_rth=False, status="PreSubmitted",
            filled=0, remaining=int(qty), avg_fill_price=0.0, last_fill_price=0.0,
            what_if_margins=tuple(f"{m:.2f}" for m in margins), what_if_commission=round(commission, 6),
        )  # fmt: skip
        s.send(p.msg_open_order(view, sv=s.server_version))
        log.info(
            "client %d: what-if %s %s %s: commission %.2f",
            s.client_id,
            action,
            qty,
            stock.symbol,
            commission,
        )

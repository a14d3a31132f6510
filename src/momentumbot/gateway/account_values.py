"""An account's values as IB reports them (pure: the accounts desk sends them).

Account-wide values (NetLiquidation, TotalCashValue, SettledCash, AvailableFunds, ...) are in
the base currency, with its code as their currency. The cash ledgers come per currency: one
for each currency held (the base's and USD, which stocks trade in) and one labelled BASE (all
of them converted to the base currency), each with Currency, CashBalance, TotalCashBalance,
ExchangeRate (units of the base currency per unit of the ledger's), StockMarketValue,
NetLiquidationByCurrency, RealizedPnL and UnrealizedPnL; the BASE ledger also says the base
currency's code (RealCurrency). reqAccountSummary asks for the ledgers with the tags `$LEDGER`
(BASE), `$LEDGER:XXX` (currency XXX) and `$LEDGER:ALL` (every ledger)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from momentumbot.domain.units import usd_to_micro
from momentumbot.gateway.account_rules import TRADING_TYPES
from momentumbot.gateway.broker import Account
from momentumbot.gateway.record import micro_str

Row = tuple[str, str, str]  # key, value, currency

# account-wide values reqAccountSummary answers by tag (the ledger tags come as groups)
SUMMARY_TAGS = (
    "AccountType",
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "BuyingPower",
    "EquityWithLoanValue",
    "PreviousDayEquityWithLoanValue",
    "GrossPositionValue",
    "AvailableFunds",
    "ExcessLiquidity",
    "DayTradesRemaining",
    "RealizedPnL",
    "UnrealizedPnL",
)
LEDGER_TAGS = (
    "Currency",
    "RealCurrency",
    "CashBalance",
    "TotalCashBalance",
    "ExchangeRate",
    "StockMarketValue",
    "NetLiquidationByCurrency",
    "RealizedPnL",
    "UnrealizedPnL",
)
LEDGER_GROUP = "$LEDGER"
BASE = "BASE"


@dataclass(frozen=True)
class Ledger:
    """One currency's cash ledger (micro units of that currency)."""

    currency: str  # a currency code, or BASE
    cash: int
    stock: int
    realized: int
    unrealized: int
    rate: str  # ExchangeRate: base-currency units per unit of this currency

    def rows(self, real_currency: str) -> list[Row]:
        c = self.currency
        out = [("Currency", c, c)]
        if c == BASE:
            out.append(("RealCurrency", real_currency, BASE))
        out += [
            ("CashBalance", micro_str(self.cash), c),
            ("TotalCashBalance", micro_str(self.cash), c),
            ("ExchangeRate", self.rate, c),
            ("StockMarketValue", micro_str(self.stock), c),
            ("NetLiquidationByCurrency", micro_str(self.cash + self.stock), c),
            ("RealizedPnL", micro_str(self.realized), c),
            ("UnrealizedPnL", micro_str(self.unrealized), c),
        ]
        return out


@dataclass(frozen=True)
class AccountValues:
    """Everything IB reports about one account: account-wide rows and the ledgers."""

    account_rows: list[Row]
    summary_only: list[Row]  # account-wide P&L, by tag in reqAccountSummary (else per ledger)
    ledgers: list[Ledger]  # BASE first, then the base currency's (if not USD), then USD
    base_code: str

    def rows(self) -> list[Row]:
        """reqAccountUpdates' values: account-wide, then each ledger."""
        out = list(self.account_rows)
        for ledger in self.ledgers:
            out += ledger.rows(self.base_code)
        return out

    def summary(self, tags: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """reqAccountSummary's answer to `tags` (tag, value, currency)."""
        wide = {k: (v, c) for k, v, c in self.account_rows + self.summary_only}
        out: list[Row] = []
        for tag in tags:
            if tag.startswith(LEDGER_GROUP):
                out += self._ledger_group(tag[len(LEDGER_GROUP) :].lstrip(":").upper())
            elif tag in SUMMARY_TAGS and tag in wide:
                v, c = wide[tag]
                out.append((tag, v, c))
        return out

    def _ledger_group(self, which: str) -> list[Row]:
        if which == "ALL":
            chosen = self.ledgers
        else:
            chosen = [g for g in self.ledgers if g.currency == (which or BASE)]
        rows: list[Row] = []
        for ledger in chosen:
            rows += [r for r in ledger.rows(self.base_code) if r[0] in LEDGER_TAGS]
        return rows


def account_values(acct: Account, mark: Callable[[str], float]) -> AccountValues:
    """The account's values with its positions at `mark` (the last close)."""
    base = acct.base
    usd_cash = acct.cash_micro
    gross = unrealized = realized = 0
    for sym, pos in acct.positions.items():
        realized += pos.realized_micro
        if pos.qty:
            value = usd_to_micro(pos.qty * mark(sym))
            gross += value
            unrealized += value - pos.cost_micro
    rules = acct.rules
    code = base.code
    in_base = base.from_usd
    total_cash = acct.base_cash_micro + in_base(usd_cash)
    net = total_cash + in_base(gross)
    # a cash account spends only settled cash; TotalCashValue includes today's unsettled sale
    # proceeds, as at IB
    settled = acct.base_cash_micro + in_base(acct.settled_usd_micro)
    previous = rules.previous_equity_micro
    net_usd = acct.equity_usd_micro(mark)
    wide = [
        ("AccountCode", acct.name, ""),
        ("AccountType", "INDIVIDUAL", ""),
        ("TradingType-S", TRADING_TYPES[rules.kind], ""),
        ("TotalCashValue", micro_str(total_cash), code),
        ("SettledCash", micro_str(settled), code),
        ("NetLiquidation", micro_str(net), code),
        ("EquityWithLoanValue", micro_str(net), code),
        (
            "PreviousDayEquityWithLoanValue",
            micro_str(in_base(net_usd if previous is None else previous)),
            code,
        ),
        ("GrossPositionValue", micro_str(in_base(gross)), code),
        ("BuyingPower", micro_str(settled), code),
        ("AvailableFunds", micro_str(settled), code),
        ("ExcessLiquidity", micro_str(total_cash), code),
        ("DayTradesRemaining", str(rules.day_trades_remaining(net_usd)), ""),
    ]
    pnl = [
        ("RealizedPnL", micro_str(in_base(realized)), code),
        ("UnrealizedPnL", micro_str(in_base(unrealized)), code),
    ]
    rate = f"{base.per_usd}"
    ledgers = [
        Ledger(BASE, total_cash, in_base(gross), in_base(realized), in_base(unrealized), "1")
    ]
    if not base.is_usd:
        ledgers.append(Ledger(code, acct.base_cash_micro, 0, 0, 0, "1"))
    ledgers.append(Ledger("USD", usd_cash, gross, realized, unrealized, rate))
    return AccountValues(wide, pnl, ledgers, code)

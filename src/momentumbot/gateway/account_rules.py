"""IB's account rules in the gateway: cash accounts (sale proceeds settle at the next session's
open; a buy beyond the settled cash is refused) and margin accounts under 25,000 USD (the
pattern-day-trader rule: day trades counted over the last five sessions, opening orders
refused after the third). No I/O, no clock: sessions are counted by `SimBroker`'s calendar
events, fills are told as they happen."""

from __future__ import annotations

from dataclasses import dataclass, field

CASH = "cash"
MARGIN = "margin"
ACCOUNT_TYPES = (CASH, MARGIN)

PDT_EQUITY_MICRO = 25_000 * 1_000_000  # FINRA's minimum equity of a pattern day trader, USD
PDT_DAY_TRADES = 3  # day trades an account under it may make in five business days
PDT_SESSIONS = 5

# IB's trading type of the securities segment ("TradingType-S" among the account values)
TRADING_TYPES = {CASH: "STKCASH", MARGIN: "STKNOPT"}

# IB's reject texts (error 201)
PDT_TEXT = (
    "Order rejected - reason:Potential Pattern Day Trade. A potential pattern day trader error "
    "message means that an account has less than the SEC required USD 25,000 minimum Net "
    "Liquidation Value AND the number of available day trades (3) has already been used within "
    "the last 5 days.. You need to maintain an account balance of at least USD 25,000 if you "
    "wish to day trade. If you do not, we restrict you to no more than 3 day trades within any "
    "5 business day period as a 4th trade would create a violation.. This order rejection "
    "serves to prevent you from opening a 4th trade and possibly closing it today."
)


def settled_cash_text(shortfall_usd: float, account: str) -> str:
    return (
        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. THERE IS INSUFFICIENT SETTLED CASH "
        f"[{shortfall_usd:.2f} USD for {account}] IN YOUR ACCOUNT TO OBTAIN THE DESIRED POSITION."
    )


@dataclass
class AccountRules:
    """Settlement and day-trade bookkeeping of one account."""

    kind: str = MARGIN
    unsettled_micro: int = 0  # cash accounts: today's sale proceeds (net of commission)
    session: int = 0  # sessions opened so far
    day_trades: list[int] = field(default_factory=list)  # the session of each day trade
    _opened: set[str] = field(default_factory=set)  # symbols bought since their last day trade

    def __post_init__(self) -> None:
        if self.kind not in ACCOUNT_TYPES:
            raise ValueError(f"account type {self.kind!r}: use cash or margin")

    @property
    def is_cash(self) -> bool:
        return self.kind == CASH

    def on_session_open(self) -> None:
        """A new session: yesterday's sale proceeds have settled; nothing is open today."""
        self.session += 1
        self.unsettled_micro = 0
        self._opened.clear()

    def on_fill(self, symbol: str, buy: bool, net_micro: int) -> None:
        """A fill: a buy opens `symbol` for today; a sell after a buy today is a day trade
        (buy, sell, buy, sell: two). A cash account's sale proceeds (`net_micro`, after
        commission) wait for the next session."""
        if buy:
            self._opened.add(symbol)
            return
        if self.is_cash:
            self.unsettled_micro += net_micro
        if symbol in self._opened:
            self._opened.discard(symbol)
            self.day_trades.append(self.session)

    def settled_micro(self, cash_micro: int) -> int:
        """Settled cash: the cash less today's unsettled sale proceeds."""
        return cash_micro - self.unsettled_micro

    def day_trades_in_window(self) -> int:
        """Day trades in the last five sessions (today included)."""
        return sum(1 for s in self.day_trades if s > self.session - PDT_SESSIONS)

    def day_trades_remaining(self, net_liquidation_micro: int) -> int:
        """IB's DayTradesRemaining: -1 when unlimited (a cash account, or a margin account
        of 25,000 USD or more)."""
        if self.is_cash or net_liquidation_micro >= PDT_EQUITY_MICRO:
            return -1
        return max(PDT_DAY_TRADES - self.day_trades_in_window(), 0)

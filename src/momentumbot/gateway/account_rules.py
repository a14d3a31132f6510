"""IB's account rules in the gateway: cash accounts (sale proceeds settle at the next session's
open; a buy beyond the settled cash is refused) and margin accounts under 25,000 USD (the
pattern-day-trader rule, judged as IB does on the previous day's equity at the close: day
trades counted over the last five sessions, opening orders refused after the third); an
account's base currency (`BaseCurrency`: USD, or another with a fixed exchange rate and a
ledger of its own). No I/O, no clock: sessions are counted by `SimBroker`'s calendar events,
fills are told as they happen."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

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


@dataclass(frozen=True)
class BaseCurrency:
    """An account's base currency. Stocks trade in USD, so trades move only the USD ledger; a
    non-USD base also holds `cash` in its own ledger, never converted automatically (IB does
    not convert for a cash account; a margin account borrows the USD instead). `per_usd` is
    IB's ExchangeRate of USD in such an account: units of the base currency per USD."""

    code: str = "USD"
    per_usd: Decimal = Decimal(1)
    cash: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        code = self.code.upper()
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"base currency {self.code!r}: use a three-letter code such as EUR")
        object.__setattr__(self, "code", code)
        if not self.per_usd > 0:
            raise ValueError(f"exchange rate {self.per_usd}: must be positive (base units per USD)")
        if code == "USD" and (self.per_usd != 1 or self.cash):
            raise ValueError("a USD base has no exchange rate and no second ledger")
        if self.cash < 0:
            raise ValueError("the base currency's cash must not be negative")

    @property
    def is_usd(self) -> bool:
        return self.code == "USD"

    def from_usd(self, usd_micro: int) -> int:
        """USD (micro) in the base currency (micro), at the fixed rate."""
        return int((Decimal(usd_micro) * self.per_usd).to_integral_value())

    def to_usd(self, base_micro: int) -> int:
        """Base currency (micro) in USD (micro), at the fixed rate."""
        return int((Decimal(base_micro) / self.per_usd).to_integral_value())


USD = BaseCurrency()


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
    # equity with loan value (USD) at the previous session's close, as IB judges the
    # pattern-day-trader rule (PreviousDayEquityWithLoanValue); before the first close, the
    # equity the account started with (`SimBroker` sets it)
    previous_equity_micro: int | None = None
    _close_equity_micro: int | None = None  # the last close's, until the next session opens

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
        if self._close_equity_micro is not None:
            self.previous_equity_micro = self._close_equity_micro
            self._close_equity_micro = None

    def on_session_close(self, equity_micro: int) -> None:
        """The session closed with this equity (USD, at the closing marks): tomorrow's
        previous-day equity."""
        self._close_equity_micro = equity_micro

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

    def day_trades_remaining(self, equity_micro: int | None = None) -> int:
        """IB's DayTradesRemaining: -1 when unlimited (a cash account, or a margin account
        whose previous day's equity was 25,000 USD or more). The equity is the previous
        close's (`previous_equity_micro`); `equity_micro` stands in before a first close."""
        equity = (
            self.previous_equity_micro if self.previous_equity_micro is not None else equity_micro
        )
        if self.is_cash or (equity is not None and equity >= PDT_EQUITY_MICRO):
            return -1
        return max(PDT_DAY_TRADES - self.day_trades_in_window(), 0)

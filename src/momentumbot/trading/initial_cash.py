"""The start's check of `[portfolio] initial_cash` (USD) against what the account can pay for
US stock with, by IB's rules. A USD-base account: its settled cash. Another base currency
(IB's $LEDGER): the USD ledger and the settled funds converted to USD with IB's ExchangeRate;
a cash account needs both (IB does not convert currencies for it: a USD buy without USD is
refused), a margin account needs the settled funds (IB lends it the USD, at interest: a
warning says so when the USD ledger is short)."""

from __future__ import annotations

from momentumbot.domain.errors import ConfigError
from momentumbot.domain.units import usd_to_micro
from momentumbot.execution.broker_protocol import BrokerSnapshot, Funds


def _usd(micro: int) -> str:
    return f"{micro / 1e6:,.2f} USD"


def check_initial_cash(
    initial_cash: float, snap: BrokerSnapshot, account: str, account_type: str
) -> str:
    """Raises ConfigError (one line: the account, the figures and their currencies, what to
    do) when the account cannot pay for `initial_cash`; returns a warning ("" if none)."""
    need = usd_to_micro(initial_cash)
    f = snap.funds
    if f is None or f.is_usd:
        settled = snap.settled_cash_micro
        have = settled if settled is not None else snap.cash_micro
        if have is not None and have < need:
            raise ConfigError(
                f"[portfolio] initial_cash {_usd(need)} is more than the "
                f"{'settled ' if settled is not None else ''}cash in {account} ({_usd(have)}); "
                "deposit more, wait for sales to settle, or lower [portfolio] initial_cash to "
                f"{have / 1e6:,.2f}"
            )
        return ""
    return _check_ledgers(need, f, account, account_type == "cash")


def _check_ledgers(need: int, f: Funds, account: str, cash: bool) -> str:
    usd, settled = f.usd_cash_micro, f.settled_usd_micro
    base = f.base_currency
    if usd is None or settled is None or f.settled_base_micro is None:
        raise ConfigError(
            f"{account}'s base currency is {base}, but it does not report its USD ledger "
            "(CashBalance in USD), SettledCash and the ExchangeRate of USD; the bot cannot "
            "check [portfolio] initial_cash in USD (is the account summary's $LEDGER:ALL "
            "answered?)"
        )
    figures = (
        f"{account} (base currency {base}) holds {_usd(usd)} in its USD ledger and settled "
        f"funds of {f.settled_base_micro / 1e6:,.2f} {base} ({_usd(settled)} at IB's "
        f"ExchangeRate {f.base_per_usd:g} {base} per USD)"
    )
    binding = min(usd, settled) if cash else settled
    if binding < need:
        if cash and usd < need:
            todo = (
                f"a cash account pays for US stock with USD only (IB does not convert {base}): "
                f"deposit or convert at least {_usd(need - usd)} into USD"
            )
        else:
            todo = f"deposit at least {_usd(need - settled)} more or wait for sales to settle"
        raise ConfigError(
            f"[portfolio] initial_cash {_usd(need)} is more than {figures}; {todo}, or lower "
            f"[portfolio] initial_cash to {max(binding, 0) / 1e6:,.2f}"
        )
    if usd < need:
        return (
            f"{figures}: buys beyond the USD ledger borrow USD from IB at its margin rate; "
            f"convert {_usd(need - usd)} of {base} into USD to avoid the interest"
        )
    return ""

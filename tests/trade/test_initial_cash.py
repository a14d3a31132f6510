"""The start's money checks without a broker: `[portfolio] initial_cash` against what the
account can pay for US stock with (a USD base: settled cash; another base: the USD ledger and
the settled funds at IB's ExchangeRate, by the account type's rule), reading those figures as
ib_async hands them over, and the pattern-day-trader check on the previous day's equity."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.execution.broker_protocol import AccountStatus, BrokerSnapshot, Funds
from momentumbot.execution.ib_reports import account_status, cash_micro, funds
from momentumbot.trading.guards import check_account_type
from momentumbot.trading.initial_cash import check_initial_cash

M = 1_000_000
ACCT = "DU1"


def _v(tag: str, value: str, currency: str) -> SimpleNamespace:
    return SimpleNamespace(tag=tag, value=value, currency=currency, account=ACCT)


def eur_values(usd: str = "1000.00", eur: str = "50000.00", rate: str = "0.92") -> list[Any]:
    """What IB reports for a EUR-base account holding `eur` EUR and `usd` USD (summary with
    $LEDGER:ALL, or account updates)."""
    usd_in_eur = float(usd) * float(rate)
    total = float(eur) + usd_in_eur
    return [
        _v("TradingType-S", "STKCASH", ""),
        _v("NetLiquidation", f"{total:.2f}", "EUR"),
        _v("TotalCashValue", f"{total:.2f}", "EUR"),
        _v("SettledCash", f"{total:.2f}", "EUR"),
        _v("PreviousDayEquityWithLoanValue", f"{total:.2f}", "EUR"),
        _v("DayTradesRemaining", "-1", ""),
        _v("Currency", "BASE", "BASE"),
        _v("RealCurrency", "EUR", "BASE"),
        _v("CashBalance", f"{total:.2f}", "BASE"),
        _v("ExchangeRate", "1", "BASE"),
        _v("Currency", "EUR", "EUR"),
        _v("CashBalance", eur, "EUR"),
        _v("ExchangeRate", "1", "EUR"),
        _v("Currency", "USD", "USD"),
        _v("CashBalance", usd, "USD"),
        _v("ExchangeRate", rate, "USD"),
    ]


def snapshot(values: list[Any]) -> BrokerSnapshot:
    return BrokerSnapshot(ACCT, [], [], [], {}, cash_micro(values, ACCT), funds=funds(values, ACCT))


# ---------------------------------------------------------------- reading IB's values


def test_a_eur_base_accounts_figures_are_read_in_usd() -> None:
    values = eur_values()
    f = funds(values, ACCT)
    assert f == Funds("EUR", 1_000 * M, round((50_000 + 920) * M), 0.92)
    assert f.settled_usd_micro == round(50_920 / 0.92 * M)
    # the bot's cash is the USD ledger: the trades move it, not the EUR
    assert cash_micro(values, ACCT) == 1_000 * M
    st = account_status(values, ACCT)
    assert st.base_currency == "EUR" and st.account_type == "cash"
    assert st.net_liquidation_micro == pytest.approx(50_920 / 0.92 * M, abs=1)
    assert st.previous_day_equity_micro == st.net_liquidation_micro
    # no ExchangeRate reported: the figures are unknown, not taken as USD
    no_rate = [v for v in values if v.tag != "ExchangeRate"]
    assert account_status(no_rate, ACCT).net_liquidation_micro is None
    assert funds(no_rate, ACCT).settled_usd_micro is None


def test_a_usd_base_account_reads_as_before() -> None:
    values = [
        _v("NetLiquidation", "30000", "USD"),
        _v("TotalCashValue", "30000", "USD"),
        _v("SettledCash", "29000", "USD"),
        _v("PreviousDayEquityWithLoanValue", "24000", "USD"),
        _v("CashBalance", "30000", "BASE"),
    ]
    assert cash_micro(values, ACCT) == 30_000 * M
    f = funds(values, ACCT)
    assert f.is_usd and f.settled_usd_micro == 29_000 * M
    st = account_status(values, ACCT)
    assert (st.net_liquidation_micro, st.previous_day_equity_micro) == (30_000 * M, 24_000 * M)


# ---------------------------------------------------------------- initial_cash


def test_a_eur_base_cash_account_needs_the_usd_in_its_usd_ledger() -> None:
    snap = snapshot(eur_values(usd="1000.00"))
    with pytest.raises(ConfigError) as err:
        check_initial_cash(20_000.0, snap, ACCT, "cash")
    msg = str(err.value)
    assert "\n" not in msg
    assert "DU1" in msg and "base currency EUR" in msg
    assert "1,000.00 USD in its USD ledger" in msg  # the USD figure
    assert "50,920.00 EUR" in msg and "55,347.83 USD" in msg  # the EUR figure, converted
    assert "0.92 EUR per USD" in msg
    assert "convert at least 19,000.00 USD" in msg and "initial_cash to 1,000.00" in msg
    # with the USD there, the same EUR account passes
    assert check_initial_cash(20_000.0, snapshot(eur_values(usd="25000.00")), ACCT, "cash") == ""


def test_a_eur_base_margin_account_borrows_the_usd_with_a_warning() -> None:
    snap = snapshot(eur_values(usd="1000.00"))
    warning = check_initial_cash(20_000.0, snap, ACCT, "margin")
    assert "borrow USD" in warning and "19,000.00 USD" in warning
    # but not beyond its settled funds
    with pytest.raises(ConfigError, match="deposit at least"):
        check_initial_cash(60_000.0, snap, ACCT, "margin")


def test_a_eur_base_account_without_its_ledgers_is_not_guessed() -> None:
    values = [v for v in eur_values() if not (v.tag == "CashBalance" and v.currency == "USD")]
    with pytest.raises(ConfigError, match="does not report its USD ledger"):
        check_initial_cash(1_000.0, snapshot(values), ACCT, "cash")


def test_a_usd_account_is_checked_on_its_settled_cash() -> None:
    snap = BrokerSnapshot(ACCT, [], [], [], {}, 30_000 * M, settled_cash_micro=12_000 * M)
    with pytest.raises(ConfigError) as err:
        check_initial_cash(20_000.0, snap, ACCT, "cash")
    assert "settled cash in DU1 (12,000.00 USD)" in str(err.value)
    assert check_initial_cash(12_000.0, snap, ACCT, "cash") == ""


# ---------------------------------------------------------------- the pattern-day-trader rule


def test_a_margin_account_is_refused_on_its_previous_days_equity_too() -> None:
    cfg = AppConfig(broker={"account_type": "margin"})
    above_now = AccountStatus("margin", 40_000 * M, 40_000 * M, -1, 24_000 * M)
    with pytest.raises(ConfigError) as err:
        check_account_type(cfg, above_now, ACCT)
    msg = str(err.value)
    assert "previous day's equity 24,000.00 USD" in msg and "pattern-day-trader" in msg
    below_now = AccountStatus("margin", 24_000 * M, 24_000 * M, -1, 40_000 * M)
    with pytest.raises(ConfigError):
        check_account_type(cfg, below_now, ACCT)
    both_above = AccountStatus("margin", 40_000 * M, 40_000 * M, -1, 40_000 * M)
    assert check_account_type(cfg, both_above, ACCT) is False
    allowed = AppConfig(broker={"account_type": "margin", "allow_pdt_limited": True})
    assert check_account_type(allowed, above_now, ACCT) is True

"""The account-type guard without a broker: what a start accepts and refuses, by the values an
account reports (IB's TradingType-S, NetLiquidation, DayTradesRemaining), and reading those
values as ib_async hands them over."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.execution.broker_protocol import AccountStatus
from momentumbot.execution.ib_reports import account_status
from momentumbot.trading.guards import check_account_config, check_account_type

M = 1_000_000


def cfg(account_type: str = "", settlement: str = "T+0", **broker: object) -> AppConfig:
    return AppConfig(
        broker={"account_type": account_type, **broker},
        portfolio={"settlement": settlement},
    )


def status(kind: str, net: float, left: int | None = -1) -> AccountStatus:
    return AccountStatus(kind, int(net * M), int(net * M), left)


def test_live_needs_the_account_type_and_cash_needs_t1() -> None:
    with pytest.raises(ConfigError, match="account_type"):
        check_account_config(cfg(), live=True)
    check_account_config(cfg(), live=False)
    with pytest.raises(ConfigError, match='settlement = "T\\+1"'):
        check_account_config(cfg("cash"), live=False)
    check_account_config(cfg("cash", "T+1"), live=True)


def test_the_type_must_match_the_accounts() -> None:
    with pytest.raises(ConfigError, match="is a margin account"):
        check_account_type(cfg("cash", "T+1"), status("margin", 100_000), "DU1")
    with pytest.raises(ConfigError, match="is a cash account"):
        check_account_type(cfg("margin"), status("cash", 100_000), "DU1")
    assert check_account_type(cfg("cash", "T+1"), status("cash", 5_000), "DU1") is False
    # a paper run without account_type takes the account's: a cash account needs T+1
    with pytest.raises(ConfigError, match="cash account"):
        check_account_type(cfg(), status("cash", 5_000), "DU1")


def test_a_margin_account_under_the_pdt_line_is_refused_unless_allowed() -> None:
    assert check_account_type(cfg("margin"), status("margin", 100_000), "DU1") is False
    for st in (status("margin", 25_500), status("margin", 20_000, 3), status("margin", 30_000, 2)):
        with pytest.raises(ConfigError) as err:
            check_account_type(cfg("margin"), st, "DU1")
        assert "pattern-day-trader" in str(err.value) and "\n" not in str(err.value)
    assert check_account_type(
        cfg("margin", allow_pdt_limited=True), status("margin", 20_000, 3), "DU1"
    )
    # the buffer is configurable
    assert not check_account_type(
        cfg("margin", pdt_equity_buffer=0.0), status("margin", 25_500), "DU1"
    )


def _v(tag: str, value: str, currency: str = "USD", account: str = "DU1") -> SimpleNamespace:
    return SimpleNamespace(tag=tag, value=value, currency=currency, account=account)


def test_account_values_as_ib_async_hands_them_over() -> None:
    values = [
        _v("TradingType-S", "STKCASH", ""),
        _v("NetLiquidation", "20000.50"),
        _v("SettledCash", "12000.25"),
        _v("DayTradesRemaining", "-1", ""),
        _v("NetLiquidation", "1.0", account="DU2"),
    ]
    st = account_status(values, "DU1")
    assert st == AccountStatus("cash", 20_000_500_000, 12_000_250_000, -1)
    st = account_status(
        [_v("TradingType-S", "STKNOPT", ""), _v("DayTradesRemaining", "2", "")], "DU1"
    )
    assert (st.account_type, st.day_trades_remaining, st.net_liquidation_micro) == (
        "margin",
        2,
        None,
    )
    assert account_status([], "DU1").account_type == ""

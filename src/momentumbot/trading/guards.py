"""The guards between a config and real money: live needs three switches and the risk
limits; the connected account must be the one configured and of the right kind (paper or
live; cash or margin, and a margin account not under the pattern-day-trader limit unless
allowed). Which ports
and accounts are live is the broker's knowledge (`execution.ib_broker` for IB): it comes in
as `live_port` and `is_paper`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from momentumbot.config.schema import AppConfig, BrokerConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.execution.broker_protocol import AccountStatus
from momentumbot.risk.limits import RiskLimits

log = logging.getLogger("momentumbot.trade")


def check_config(broker: BrokerConfig, limits: RiskLimits, *, live: bool, live_port: bool) -> None:
    """Before connecting: --live needs `live = true`, the account id and the risk limits."""
    if live and not broker.live:
        raise ConfigError(
            "--live: the config does not allow live trading; set `live = true` in [broker] "
            "(and `account`) to trade real money"
        )
    if live:
        if not broker.account:
            raise ConfigError("--live: set [broker] account to the live account id")
        missing = limits.missing_for_live()
        if missing:
            raise ConfigError(
                "--live: set the risk limits "
                + ", ".join(f"[risk] {m}" for m in missing)
                + " before trading real money"
            )
    elif live_port:
        log.warning("the port is a live port of the broker; a paper run checks the account")


def choose_account(
    accounts: list[str],
    wanted: str,
    *,
    live: bool,
    stored: str | None,
    run_dir: Path,
    is_paper: Callable[[str], bool],
) -> str:
    """After connecting: the account to trade, or a ConfigError saying why none."""
    if wanted:
        if wanted not in accounts:
            raise ConfigError(
                f"[broker] account {wanted} is not an account of this connection "
                f"({', '.join(accounts) or 'none'})"
            )
        account = wanted
    elif len(accounts) == 1:
        account = accounts[0]
    else:
        raise ConfigError(
            f"the connection manages accounts {', '.join(accounts)}: set [broker] account"
        )
    paper = is_paper(account)
    if live and paper:
        raise ConfigError(f"--live, but {account} is a paper account; refusing to start")
    if not live and not paper:
        raise ConfigError(
            f"this is a paper run, but {account} is a LIVE account; refusing to start "
            "(use --live with `live = true` and the account id in the config to trade real money)"
        )
    if stored and stored != account:
        raise ConfigError(f"{run_dir}: this run trades account {stored}, not {account}")
    return account


PDT_EQUITY = 25_000.0  # FINRA: a pattern day trader needs this much equity (USD)


def check_account_config(cfg: AppConfig, *, live: bool) -> None:
    """Before connecting: --live needs [broker] account_type; a cash account needs
    [portfolio] settlement = "T+1" (so a backtest of the config trades the same way)."""
    kind = cfg.broker.account_type
    if live and not kind:
        raise ConfigError(
            '--live: set [broker] account_type = "cash" or "margin" (docs/going-live.md says '
            "which the strategy needs)"
        )
    if kind == "cash" and cfg.portfolio.settlement != "T+1":
        raise ConfigError(
            '[broker] account_type = "cash" needs [portfolio] settlement = "T+1": a cash '
            "account may spend sale proceeds only once they settle (the next session)"
        )


def check_account_type(cfg: AppConfig, status: AccountStatus, account: str) -> bool:
    """After connecting: the account is of the configured type, and a margin account is not
    under the pattern-day-trader limit (unless allow_pdt_limited): its net liquidation or its
    previous day's equity (which IB judges the rule on) under 25,000 USD plus
    pdt_equity_buffer, or day trades counted. Returns whether the run
    trades under that limit (new buys halt when no day trade is left)."""
    b = cfg.broker
    reported = status.account_type
    if b.account_type and reported and b.account_type != reported:
        raise ConfigError(
            f'[broker] account_type = "{b.account_type}", but {account} is a {reported} account'
        )
    if not reported:
        log.warning("%s does not report its type (TradingType-S); trusting the config", account)
    kind = b.account_type or reported or "margin"
    if kind == "cash":
        if cfg.portfolio.settlement != "T+1":
            raise ConfigError(
                f'{account} is a cash account: set [portfolio] settlement = "T+1" (sale proceeds '
                "settle at the next session; buying with them is free-riding)"
            )
        return False
    net = status.net_liquidation_micro
    prev = status.previous_day_equity_micro  # IB judges the rule on the previous close's
    left = status.day_trades_remaining
    need = PDT_EQUITY + b.pdt_equity_buffer
    under = any(x is not None and x / 1e6 < need for x in (net, prev))
    counted = left is not None and left >= 0
    if not (under or counted):
        return False
    why = (
        f"{account} is a margin account with net liquidation "
        + (f"{net / 1e6:,.2f} USD" if net is not None else "unknown")
        + (f", previous day's equity {prev / 1e6:,.2f} USD" if prev is not None else "")
        + (f" and {left} day trades left" if counted else "")
        + f" (under {PDT_EQUITY:,.0f} USD + pdt_equity_buffer {b.pdt_equity_buffer:,.0f}): the "
        "pattern-day-trader rule allows 3 day trades in 5 business days"
    )
    if not b.allow_pdt_limited:
        raise ConfigError(
            f"{why}; fund it to {need:,.0f} USD, use a cash account (settlement T+1), or set "
            "[broker] allow_pdt_limited = true to trade until the day trades are used up"
        )
    log.warning("%s; allow_pdt_limited: new buys halt when no day trade is left", why)
    return True

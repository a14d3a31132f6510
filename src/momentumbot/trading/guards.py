"""The guards between a config and real money: live needs three switches and the risk
limits; the connected account must be the one configured and of the right kind. Which ports
and accounts are live is the broker's knowledge (`execution.ib_broker` for IB): it comes in
as `live_port` and `is_paper`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.errors import ConfigError
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

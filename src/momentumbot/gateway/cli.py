"""`momentumbot gateway`: run the simulated TWS gateway."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from momentumbot.domain.errors import ConfigError, DataError, RetryLaterError
from momentumbot.domain.units import EXCHANGE_TZ

if TYPE_CHECKING:
    from momentumbot.data.store import BarStore
    from momentumbot.gateway.account_rules import BaseCurrency
    from momentumbot.gateway.faults import Faults
    from momentumbot.gateway.server import GatewayConfig


_StoreOpt = Annotated[Path, typer.Option("--store", help="Folder of the Parquet bar store.")]
_HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
_PortOpt = Annotated[
    int, typer.Option("--port", help="TWS API port (7497 = TWS paper; 0 = any free port).")
]
_StartOpt = Annotated[
    str | None,
    typer.Option(
        "--start",
        help="First session (YYYY-MM-DD); the clock starts at 09:00 New York that day. "
        "Default: the second session in the store, so one session of history is there.",
    ),
]
_SpeedOpt = Annotated[
    str,
    typer.Option(
        "--speed",
        help="Market seconds per real second (1 = real time); max: as fast as --lockstep "
        "allows (only with --lockstep).",
    ),
]
_LockstepOpt = Annotated[
    bool,
    typer.Option(
        "--lockstep",
        help="After each minute's bars (and the forming bar after a close), wait until every "
        "client streaming bars has gone quiet: a replay at any --speed gives the backtest's "
        "orders and fills.",
    ),
]
_HoldUntilClientOpt = Annotated[
    bool,
    typer.Option(
        "--hold-until-client/--no-hold-until-client",
        help="Keep the running clock before the first session's open until a client has "
        "subscribed to bars (and finished subscribing).",
    ),
]
_StepOpt = Annotated[
    bool,
    typer.Option("--step", help="Step mode: the clock moves only by control-port commands."),
]
_AccountOpt = Annotated[str, typer.Option("--account", help="Account id(s), comma-separated.")]
_CashOpt = Annotated[str, typer.Option("--cash", help="Starting cash per account, USD.")]
_AccountTypeOpt = Annotated[
    str,
    typer.Option(
        "--account-type",
        help="cash (sale proceeds settle at the next session's open; buys only with settled "
        "cash) or margin (IB paper accounts; under 25,000 USD the pattern-day-trader rule).",
    ),
]
_BaseCurrencyOpt = Annotated[
    str,
    typer.Option(
        "--base-currency",
        help="The accounts' base currency (USD; e.g. EUR: account values in it, the cash "
        "ledgers per currency, USD buys paid from the USD ledger only in a cash account).",
    ),
]
_ExchangeRateOpt = Annotated[
    str,
    typer.Option(
        "--exchange-rate",
        help="With a non-USD --base-currency: IB's ExchangeRate of USD, base-currency units "
        "per USD (fixed).",
    ),
]
_BaseCashOpt = Annotated[
    str,
    typer.Option(
        "--base-cash",
        help="With a non-USD --base-currency: cash per account in it (--cash is the USD ledger's).",
    ),
]
_FaultOpt = Annotated[
    list[str] | None,
    typer.Option("--fault", help="Switch a fault on (repeatable); `--fault help` lists them."),
]
_ControlPortOpt = Annotated[
    int | None,
    typer.Option("--control-port", help="Line-based control port on 127.0.0.1 (0 = any)."),
]
_RecordOpt = Annotated[
    Path | None,
    typer.Option("--record", help="Append every order and fill to this JSON-lines file."),
]
_ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config: the [execution] costs the fills use."),
]
_TwsTimezoneOpt = Annotated[
    str,
    typer.Option(
        "--tws-timezone",
        help="The TWS login time zone: how `exec-time-format=naive-local` times are written.",
    ),
]
_LogLevelOpt = Annotated[str, typer.Option("--log-level", help="DEBUG logs every message.")]


def gateway_command(
    store: _StoreOpt = Path("data/store"),
    host: _HostOpt = "127.0.0.1",
    port: _PortOpt = 7497,
    start: _StartOpt = None,
    speed: _SpeedOpt = "1",
    lockstep: _LockstepOpt = False,
    hold_until_client: _HoldUntilClientOpt = True,
    step: _StepOpt = False,
    account: _AccountOpt = "DU0000001",
    cash: _CashOpt = "100000",
    account_type: _AccountTypeOpt = "margin",
    base_currency: _BaseCurrencyOpt = "USD",
    exchange_rate: _ExchangeRateOpt = "1",
    base_cash: _BaseCashOpt = "0",
    fault: _FaultOpt = None,
    control_port: _ControlPortOpt = None,
    record: _RecordOpt = None,
    config: _ConfigOpt = None,
    tws_timezone: _TwsTimezoneOpt = "America/New_York",
    log_level: _LogLevelOpt = "INFO",
) -> None:
    """Run the simulated IB gateway (TWS API on loopback) over bars from the store.

    It replays the store's bars on a virtual market clock, fills orders with the backtest's fill
    and cost model, and injects faults on demand. Point ib_async (or the bot) at --port.
    Prints one line "listening HOST:PORT control PORT" on stdout once it accepts connections.
    """
    from momentumbot.config.loader import load_config
    from momentumbot.data.store import BarStore
    from momentumbot.gateway.faults import FAULT_HELP
    from momentumbot.gateway.server import GatewayConfig

    if fault and "help" in fault:
        typer.echo(FAULT_HELP, nl=False)
        return
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    faults = _faults(fault or [])
    start_cash, accounts = _accounts(account, cash, account_type)
    base = _base_currency(base_currency, exchange_rate, base_cash)
    replay_speed = _speed(speed, lockstep)
    _check_tws_timezone(tws_timezone)
    bars = BarStore(store)
    symbols = bars.symbols()
    if not symbols:
        raise DataError(
            f"no bars in the store {store}; generate some with `momentumbot data generate --store {store}` "
            "or import them with `momentumbot data import`"
        )
    cfg = GatewayConfig(
        start=start or _second_session(bars, symbols),
        speed=replay_speed,
        step_mode=step,
        lockstep=lockstep,
        hold_until_client=hold_until_client,
        host=host,
        port=port,
        accounts=accounts,
        cash=start_cash,
        account_type=account_type,
        base_currency=base,
        execution=load_config(config).execution,
        record_path=str(record) if record else None,
        faults=faults,
        tws_timezone=tws_timezone,
    )
    asyncio.run(_serve(bars, cfg, control_port))


def _faults(specs: list[str]) -> Faults:
    """IB's forming bars by default (`--fault forming-bars=0` switches them off), then each
    --fault in order."""
    from momentumbot.gateway.faults import DEFAULT_FORMING_BARS, Faults, FaultSpecError

    faults = Faults()
    faults.apply(DEFAULT_FORMING_BARS)
    for spec in specs:
        try:
            faults.apply(spec)
        except FaultSpecError as exc:
            raise ConfigError(f"--fault: {exc}") from None
    return faults


def _accounts(account: str, cash: str, account_type: str) -> tuple[Decimal, tuple[str, ...]]:
    try:
        start_cash = Decimal(cash)
    except InvalidOperation:
        raise ConfigError(f"--cash: {cash!r} is not a number") from None
    if start_cash < 0:
        raise ConfigError("--cash must not be negative")
    if account_type not in ("cash", "margin"):
        raise ConfigError(f"--account-type: {account_type!r}: use cash or margin")
    accounts = tuple(a.strip() for a in account.split(",") if a.strip())
    if not accounts:
        raise ConfigError("--account: give at least one account id")
    return start_cash, accounts


def _speed(speed: str, lockstep: bool) -> float:
    from momentumbot.gateway.desks.lockstep import parse_speed

    try:
        replay_speed = parse_speed(speed)
    except ValueError as exc:
        raise ConfigError(f"--speed: {exc}") from None
    if math.isinf(replay_speed) and not lockstep:
        raise ConfigError("--speed max needs --lockstep (the clock would race past every order)")
    return replay_speed


def _check_tws_timezone(name: str) -> None:
    from momentumbot.gateway.exec_time import tws_zone

    try:
        tws_zone(name)
    except ValueError as exc:
        raise ConfigError(f"--tws-timezone: {exc}") from None


def _base_currency(code: str, rate: str, cash: str) -> BaseCurrency:
    from momentumbot.gateway.account_rules import BaseCurrency

    try:
        per_usd, base_cash = Decimal(rate), Decimal(cash)
    except InvalidOperation:
        raise ConfigError(
            f"--exchange-rate {rate!r} / --base-cash {cash!r}: give numbers"
        ) from None
    if code.upper() == "USD" and (per_usd != 1 or base_cash):
        raise ConfigError("--exchange-rate and --base-cash need a non-USD --base-currency")
    try:
        return BaseCurrency(code, per_usd, base_cash)
    except ValueError as exc:
        raise ConfigError(f"--base-currency: {exc}") from None


def _second_session(bars: BarStore, symbols: list[str]) -> str:
    from momentumbot.data.calendar import TradingCalendar

    first_ns = min(bars.info(s).first_ns for s in symbols)
    day = pd.Timestamp(first_ns, tz="UTC").tz_convert(EXCHANGE_TZ).date()
    sessions = TradingCalendar("XNYS").sessions(day, pd.Timestamp(day) + pd.Timedelta(days=14))
    if len(sessions) < 2:
        raise DataError(f"the store's bars start on {day}; no session follows it in the calendar")
    return str(sessions[1].date())


async def _serve(bars: BarStore, cfg: GatewayConfig, control_port: int | None) -> None:
    from momentumbot.gateway.control import ControlServer
    from momentumbot.gateway.server import GatewayServer

    try:
        gateway = GatewayServer(bars, cfg)
    except ValueError as exc:
        raise ConfigError(f"--start: {exc}") from None
    try:
        await gateway.start()
    except OSError as exc:
        raise RetryLaterError(
            f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror}); is a TWS or another gateway "
            "running? choose another --port"
        ) from None
    control: ControlServer | None = None
    try:
        if control_port is not None:
            control = ControlServer(gateway, control_port)
            await control.start()
        typer.echo(
            f"listening {cfg.host}:{gateway.port} control {control.port if control else '-'}",
        )
        sys.stdout.flush()
        if control is not None:
            await control.shutdown_requested.wait()
        else:
            await asyncio.Event().wait()
    finally:
        if control is not None:
            await control.stop()
        await gateway.stop()

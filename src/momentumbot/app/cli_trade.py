"""`momentumbot trade` and `momentumbot stop`: paper and live trading from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from momentumbot.domain.errors import ConfigError
from momentumbot.domain.symbols import split_symbols


def trade_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (defaults apply if omitted)."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="TWS / IB Gateway host (default: host in the config's broker section)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="API port (default: the config's; paper 7497 / 4002)."),
    ] = None,
    client_id: Annotated[
        int | None,
        typer.Option("--client-id", help="API client id (default: the config's client_id)."),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Trade a LIVE account (also needs `live = true`, the account id and risk limits "
            "in the config). Paper otherwise.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder (default: runs/trade-<time>); an existing one is resumed from its journal.",
        ),
    ] = None,
    sessions: Annotated[
        int | None,
        typer.Option("--sessions", min=1, help="End cleanly after this many sessions of the run."),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option("--symbols", help="Comma-separated tickers (default: the config's)."),
    ] = None,
    rearm: Annotated[
        bool, typer.Option("--rearm", help="Lift a halt (daily loss limit) recorded in the run.")
    ] = False,
    no_console: Annotated[
        bool,
        typer.Option("--no-console", help="No live status table (it is off when not a terminal)."),
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="run.log's threshold: DEBUG, INFO, WARNING or ERROR (the terminal shows only "
            "the bot's events and its warnings).",
        ),
    ] = "INFO",
) -> None:
    """Trade the strategy through TWS / IB Gateway (paper by default) and write a run folder."""
    from rich.console import Console

    from momentumbot.app.trade import TradeOptions, default_trade_dir, trade
    from momentumbot.config.loader import load_config
    from momentumbot.trading.folder import LOG_LEVELS

    if log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    cfg = load_config(config)
    out_dir = out if out is not None else default_trade_dir()
    chosen = None
    if symbols is not None:
        chosen = tuple(split_symbols(symbols))
        if not chosen:
            raise ConfigError("--symbols: the symbol list is empty; give tickers like AAPL,MSFT")
        from momentumbot.config.loader import parse_config

        # python-mode dump keeps secrets as they are (a JSON dump would mask them)
        cfg = parse_config({**cfg.model_dump(), "symbols": list(chosen)}, "--symbols")
    opts = TradeOptions(
        out_dir=out_dir,
        host=host,
        port=port,
        client_id=client_id,
        live=live,
        sessions=sessions,
        rearm=rearm,
        console=not no_console,
        log_level=log_level,
        terminal_events=True,
    )
    outcome = asyncio.run(trade(cfg, opts))
    console = Console(stderr=True)
    console.print(
        f"[bold]{outcome.sessions} sessions, {outcome.orders:,} orders, {outcome.fills:,} fills; "
        f"stopped: {outcome.stop_reason or 'done'}[/]"
    )
    console.print(f"run folder: [bold]{outcome.out_dir}[/]")
    if (outcome.out_dir / "summary.json").is_file():
        from momentumbot.reporting.report import write_report

        html = write_report(outcome.out_dir, symbol_plots=len(cfg.symbols) <= 50)
        console.print(f"report: [bold]{html}[/]")


def stop_command(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="Run folder of the bot to stop (default: the newest runs/trade-*)."),
    ] = None,
) -> None:
    """Ask a trading bot to stop gracefully: cancel, flatten if configured, write the report."""
    from momentumbot.journal.journal import JOURNAL_NAME, read_progress
    from momentumbot.risk.kill_switch import request_stop

    if run_dir is None:
        candidates = sorted(
            (p for p in Path("runs").glob("trade-*") if (p / JOURNAL_NAME).is_file()),
            key=lambda p: p.stat().st_mtime,
        )
        if not candidates:
            raise ConfigError(
                "no trading run under runs/; give the run folder: momentumbot stop DIR"
            )
        run_dir = candidates[-1]
    if not (run_dir / JOURNAL_NAME).is_file():
        raise ConfigError(f"{run_dir}: not a trading run folder (no {JOURNAL_NAME})")
    state = read_progress(run_dir / JOURNAL_NAME).get("state", "")
    path = request_stop(run_dir)
    typer.echo(f"stop requested: {path}" + (f" (run state: {state})" if state else ""))

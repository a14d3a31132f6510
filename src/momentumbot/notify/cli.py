"""`momentumbot notify test`: one message to every configured target, and which took it."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Annotated

import typer

from momentumbot.config.schema import NOTIFY_URLS_ENV
from momentumbot.domain.errors import ConfigError, MomentumbotError

notify_app = typer.Typer(help="Alerts (Telegram, Discord, ntfy, e-mail... via Apprise).",
                         no_args_is_help=True)  # fmt: skip


class AlertsFailed(MomentumbotError):
    """No notification target took the test message: check the URLs and the network."""

    exit_code = 1


@notify_app.command("test")
def notify_test(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (defaults apply if omitted)."),
    ] = None,
) -> None:
    """Send one test message to every target of MOMENTUMBOT_NOTIFY_URLS (or [notify] urls) and
    say, per target, whether it went."""
    from momentumbot.config.loader import load_config
    from momentumbot.notify.notifier import build_notifier

    notifier = build_notifier(load_config(config))
    for warning in notifier.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if not notifier.targets:
        raise ConfigError(
            f"no notification targets: set {NOTIFY_URLS_ENV} to one or more Apprise URLs "
            "(see docs/notify.md)"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    results = notifier.send_now(
        "momentumbot: test alert",
        f"A test message from momentumbot on {socket.gethostname()} at {stamp}.",
    )
    for target, ok in results:
        typer.echo(f"{target.label}: {'sent' if ok else 'FAILED'}")
    went = sum(ok for _, ok in results)
    if not went:
        raise AlertsFailed(
            f"the test message reached none of the {len(results)} target(s); check the URLs in "
            f"{NOTIFY_URLS_ENV} and that this machine can reach the services"
        )
    typer.echo(f"{went} of {len(results)} target(s) took the test message")

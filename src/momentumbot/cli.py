"""The command line: the only place that turns exceptions into messages and exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from momentumbot.domain.errors import MomentumbotError

app = typer.Typer(
    name="momentumbot",
    help="Intraday momentum-band trading for Interactive Brokers: backtest, simulate, trade.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show and check configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (defaults apply if omitted).")
]


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective config (defaults plus FILE) as TOML that `config check` accepts."""
    from momentumbot.config.loader import config_to_toml, load_config

    typer.echo(config_to_toml(load_config(config)), nl=False)


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="Config file to check.")]) -> None:
    """Check a config file; prints OK or what is wrong, where."""
    from momentumbot.config.loader import load_config

    cfg = load_config(file)
    typer.echo(f"{file}: OK ({len(cfg.symbols)} symbols)")


def _mount_subcommands() -> None:
    from momentumbot.data.cli import data_app
    from momentumbot.gateway.cli import gateway_command

    app.add_typer(data_app, name="data")
    app.command("gateway")(gateway_command)


_mount_subcommands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        app(args=argv, standalone_mode=False)
    except MomentumbotError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = getattr(exc, "code", 0)
        return int(code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

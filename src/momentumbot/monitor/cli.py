"""`momentumbot dashboard RUN_DIR`: a run folder's dashboard, read-only (imports stay inside
the command so the CLI starts fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from momentumbot.domain.errors import ConfigError


def dashboard_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder to show (read-only).")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8050,
) -> None:
    """Serve a run folder's dashboard read-only (a bot that is not running, or runs elsewhere):
    the same page and JSON API as the running bot's, without the controls."""
    import uvicorn

    from momentumbot.journal.journal import JOURNAL_NAME
    from momentumbot.monitor.serve import RunFolderSource, exposure_warning, token_from_env
    from momentumbot.monitor.web import TOKEN_ENV, build_app

    token = token_from_env()
    if not token:
        raise ConfigError(
            f"set {TOKEN_ENV} to a long random secret (the page and the API ask for it); "
            "the dashboard does not start without one"
        )
    if not (run_dir / JOURNAL_NAME).is_file():
        raise ConfigError(f"{run_dir}: not a trading run folder (no {JOURNAL_NAME})")
    source = RunFolderSource(run_dir)
    source.snapshot()  # a broken folder fails here, with its one-line error
    warning = exposure_warning(host)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"dashboard of {run_dir} (read-only) on http://{host}:{port}/", err=True)
    uvicorn.run(build_app(source, token), host=host, port=port, log_level="warning")

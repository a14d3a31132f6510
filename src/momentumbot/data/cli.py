"""`momentumbot data ...`: import, list, generate and check bars in the store."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Bars in the local Parquet store: import, list, generate, check.", no_args_is_help=True)

"""`momentumbot report ...`: plots and the HTML report of a run folder."""

from __future__ import annotations

import typer

report_app = typer.Typer(help="Plots and an HTML report of run folders.", no_args_is_help=True)

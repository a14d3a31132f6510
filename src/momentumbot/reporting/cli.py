"""`momentumbot report ...`: plots and the HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup


class _RunDirFirst(TyperGroup):
    """`report RUN_DIR` means `report run RUN_DIR`: a first word that is not a
    subcommand (or an option) is taken as the run folder."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        result: list[str] = super().parse_args(ctx, args)
        return result

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, "RUN_DIR | compare RUN_A RUN_B ...")


report_app = typer.Typer(
    cls=_RunDirFirst,
    help=(
        "Plots and an HTML report of run folders. `momentumbot report RUN_DIR` writes "
        "RUN_DIR/plots/*.png and RUN_DIR/report.html; `momentumbot report compare RUN_A "
        "RUN_B ...` puts runs side by side."
    ),
    no_args_is_help=True,
)


@report_app.command("run")
def report_run(
    run_dir: Annotated[
        Path, typer.Argument(help="A run folder written by `momentumbot backtest`.")
    ],
    symbol_plots: Annotated[
        bool,
        typer.Option(
            "--symbol-plots/--no-symbol-plots",
            help="Write plots/symbols/<SYM>.png for each traded symbol (the slow part of wide runs).",
        ),
    ] = True,
) -> None:
    """Write RUN_DIR/plots/*.png and RUN_DIR/report.html (the same as `report RUN_DIR`)."""
    import time

    from momentumbot.reporting.chart_worker import ChartWorker

    t0 = time.perf_counter()
    worker = ChartWorker.start()  # its imports overlap this process's
    from momentumbot.reporting.report import write_report

    path = write_report(run_dir, symbol_plots=symbol_plots, worker=worker)
    size = path.stat().st_size / 1e6
    Console().print(
        f"report: [bold]{path}[/] ({size:.1f} MB, {time.perf_counter() - t0:.1f} s); "
        f"plots in {path.parent / 'plots'}"
    )


@report_app.command("compare")
def report_compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run folders.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for compare.html (default: beside the first run)."),
    ] = None,
) -> None:
    """Compare runs: figures side by side, config differences, equity curves on one plot."""
    from momentumbot.reporting.compare import write_compare

    path, table = write_compare(runs, out)
    console = Console()
    console.print(table)
    console.print(f"comparison: [bold]{path}[/]")

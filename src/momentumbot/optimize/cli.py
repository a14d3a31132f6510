"""`momentumbot optimize`: parameter sweeps and walk-forward optimisation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from momentumbot.optimize.sweep import SweepOutcome, SweepSpec


def _scheduler_from_dask_config() -> str | None:
    """Dask's own setting (DASK_SCHEDULER_ADDRESS or its YAML config), if any."""
    try:
        import dask.config
    except ImportError:
        return None
    address = dask.config.get("scheduler-address", None)
    return str(address) if address else None


_ParamOpt = Annotated[
    list[str],
    typer.Option(
        "--param",
        help="NAME=LO:HI:STEP or NAME=A,B,C (repeat for each parameter; LO:HI with --method random).",
    ),
]
_StartOpt = Annotated[str, typer.Option("--start", help="First session, YYYY-MM-DD.")]
_EndOpt = Annotated[str, typer.Option("--end", help="Last session, YYYY-MM-DD.")]
_OutOpt = Annotated[
    Path, typer.Option("--out", help="Sweep folder (a rerun into it finishes what is left).")
]
_ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Base config (defaults apply if omitted)."),
]
_StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Bar store folder (default: data.store of the config)."),
]
_SymbolsOpt = Annotated[
    str | None,
    typer.Option("--symbols", help="Comma-separated tickers or 'all' (default: the config's)."),
]
_MethodOpt = Annotated[str, typer.Option("--method", help="grid or random.")]
_TrialsOpt = Annotated[
    int | None, typer.Option("--trials", help="Parameter sets to draw (--method random).")
]
_SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of --method random.")]
_ObjectiveOpt = Annotated[
    str, typer.Option("--objective", help="sharpe, total_return, calmar or sortino.")
]
_WalkForwardOpt = Annotated[
    str | None,
    typer.Option(
        "--walk-forward", help="TRAIN,TEST sessions: choose on TRAIN, test on the next TEST."
    ),
]
_WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="Local processes (default: one per core).")
]
_SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler, tcp://HOST:PORT (default: Dask's scheduler-address setting, else local).",
    ),
]
_ReportOpt = Annotated[
    bool,
    typer.Option("--report/--no-report", help="Write the best run's folder and report.html."),
]


def optimize_command(
    param: _ParamOpt,
    start: _StartOpt,
    end: _EndOpt,
    out: _OutOpt,
    config: _ConfigOpt = None,
    store: _StoreOpt = None,
    symbols: _SymbolsOpt = None,
    method: _MethodOpt = "grid",
    trials: _TrialsOpt = None,
    seed: _SeedOpt = 0,
    objective: _ObjectiveOpt = "sharpe",
    walk_forward: _WalkForwardOpt = None,
    workers: _WorkersOpt = None,
    scheduler: _SchedulerOpt = None,
    report: _ReportOpt = True,
) -> None:
    """Sweep strategy and allocator parameters (grid or random, optionally walk-forward)."""
    from momentumbot.config.loader import load_config
    from momentumbot.domain.errors import ConfigError
    from momentumbot.optimize.space import parse_params
    from momentumbot.optimize.sweep import SweepSpec
    from momentumbot.optimize.walkforward import parse_walk_forward

    err = Console(stderr=True)
    specs = parse_params(param)
    wf = parse_walk_forward(walk_forward) if walk_forward else None
    cfg = load_config(config)
    store_dir = store if store is not None else Path(cfg.data.store)
    if scheduler is not None and not scheduler.strip():
        raise ConfigError("--scheduler: empty address; give tcp://HOST:PORT")
    spec = SweepSpec(
        base=cfg,
        store=store_dir,
        symbols=_symbols(symbols, store_dir, list(cfg.symbols)),
        start=start,
        end=end,
        specs=specs,
        out=out,
        method=method,
        trials=trials,
        seed=seed,
        objective=objective,
        walk_forward=wf,
        workers=workers,
        scheduler=scheduler or _scheduler_from_dask_config(),
        report=report,
    )
    outcome = _run_with_progress(spec, err)
    _print_outcome(outcome, objective)
    if outcome.failed:
        err.print(
            f"[bold red]error:[/] {outcome.failed} runs failed (see {out / 'failures.csv'}); "
            "rerun the same command to retry them"
        )
        raise typer.Exit(1)


def _symbols(option: str | None, store_dir: Path, configured: list[str]) -> list[str]:
    """--symbols as given ('all': every symbol in the store), else the config's."""
    from momentumbot.data.store import BarStore
    from momentumbot.domain.symbols import parse_symbols_option

    chosen = parse_symbols_option(option)
    if chosen == ["ALL"]:
        chosen = BarStore(store_dir).symbols() if store_dir.is_dir() else []
    return chosen if chosen is not None else configured


def _run_with_progress(spec: SweepSpec, err: Console) -> SweepOutcome:
    """The sweep with a progress bar on a terminal's stderr (none when it is not a terminal)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from momentumbot.optimize.sweep import run_sweep

    with Progress(
        TextColumn("[bold]optimize"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("optimize", total=None)

        def progress(done: int, total: int, phase: str) -> None:
            bar.update(task, completed=done, total=total)

        return run_sweep(spec, progress=progress)


def _print_outcome(outcome: SweepOutcome, objective: str) -> None:
    console = Console()
    console.print(
        f"[bold]{outcome.ran} runs[/] in {outcome.seconds:.1f} s on {outcome.runner}"
        f" ({outcome.skipped} done before, {outcome.failed} failed)"
    )
    info = outcome.extras
    if info.get("best"):
        b = info["best"]
        params = ", ".join(f"{k} = {v!r}" for k, v in b["parameters"].items())
        console.print(f"best by {objective}: {params} ({objective} {b['objective']:.4g})")
        console.print(f"overfitting: {info['overfitting']['verdict']}")
    if info.get("walk_forward"):
        oos = info["walk_forward"]["out_of_sample"]
        console.print(
            f"walk-forward: {info['walk_forward']['windows']} windows, out-of-sample total return "
            f"{(oos.get('total_return') or 0.0):.2%}, Sharpe {(oos.get('sharpe') or float('nan')):.2f}"
        )
    if outcome.best_config is not None:
        console.print(f"best config: [bold]{outcome.best_config}[/]")
    if outcome.summary_html is not None:
        console.print(f"summary: [bold]{outcome.summary_html}[/]")

"""The command line: the only place that turns exceptions into messages and exit codes."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from momentumbot.domain.errors import MomentumbotError
from momentumbot.domain.symbols import parse_symbols_option

if TYPE_CHECKING:
    from momentumbot.reporting.chart_worker import ChartWorker

_app = typer.Typer(
    name="momentumbot",
    help="Intraday momentum-band trading for Interactive Brokers: backtest, simulate, trade.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show and check configuration files.", no_args_is_help=True)
_app.add_typer(config_app, name="config")

err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (defaults apply if omitted)."),
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


@config_app.command("reference")
def config_reference() -> None:
    """Print the config reference (every key, default and meaning) as Markdown."""
    from momentumbot.config.reference import config_reference_markdown

    typer.echo(config_reference_markdown(), nl=False)


def _run_backtest_cli(
    cfg_path: Path | None,
    store: Path | None,
    symbols: str | None,
    start: str | None,
    end: str | None,
    out: Path | None,
    notes: tuple[str, ...] = (),
    report: bool = True,
    worker: ChartWorker | None = None,
) -> Path:
    # the report's PNGs: a second process imports matplotlib while this one imports the
    # engine and backtests, then draws (started first, so its imports overlap ours)
    if report and worker is None:
        worker = _chart_worker()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from momentumbot.app.first_run import choose_uncompiled
    from momentumbot.config.loader import load_config
    from momentumbot.data.store import BarStore

    cfg = load_config(cfg_path)
    store_dir = store if store is not None else Path(cfg.data.store)
    if not store_dir.is_dir():
        from momentumbot.domain.errors import DataError

        raise DataError(
            f"{store_dir}: no bar store here; import bars with `momentumbot data import` "
            "or generate sample bars with `momentumbot data generate`"
        )
    source = BarStore(store_dir)
    chosen = parse_symbols_option(symbols)
    if chosen == ["ALL"]:
        chosen = source.symbols()
    # before anything imports the kernels: a small run with nothing cached goes uncompiled
    bars = choose_uncompiled(source, chosen or cfg.symbols, start, end, one_shot=_ONE_SHOT[0])
    if bars is not None:
        err_console.print(
            f"compiled code not cached yet: this run (about {bars:,} bars) goes uncompiled, "
            "same results; `momentumbot precompile` compiles once (about 30 s) for faster runs"
        )

    from momentumbot.app.backtest import backtest_to_folder, default_run_dir
    from momentumbot.app.compile_ahead import compile_ahead
    from momentumbot.engine.backtest import kernel_params
    from momentumbot.reporting.console import summary_table

    said: list[str] = []

    def first_run(line: str) -> None:
        if not said:
            said.append(line)
            err_console.print(
                "first run of this version: compiling the engine into the cache "
                "(`momentumbot precompile` does it ahead) ..."
            )

    # an empty compiled-code cache is filled first (on two cores when both are idle)
    compile_ahead(first_run, kernel_params(cfg, 2))
    out_dir = out if out is not None else default_run_dir()
    console = Console()
    _freeze_loaded()
    with Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} sessions"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("backtest", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = backtest_to_folder(
            cfg,
            source,
            out_dir,
            symbols=chosen,
            start=start,
            end=end,
            progress=progress,
            notes=notes,
            store_path=store_dir,
        )
    r = run.summary["run"]
    console.print(
        f"[bold]{len(r['symbols'])} symbols, {r['first_session']} .. {r['last_session']}, "
        f"{r['bars_used']:,} bars, {r['orders']:,} orders, {r['fills']:,} fills "
        f"in {run.seconds:.2f} s"
    )
    console.print(summary_table(run.summary, run.summary["benchmark"]))
    console.print(f"run folder: [bold]{out_dir}[/]")
    if report:
        from momentumbot.reporting.report import write_report

        # symbol PNGs are the slow part of a wide run; report.html has every symbol anyway
        html = write_report(out_dir, symbol_plots=len(r["symbols"]) <= 50, worker=worker)
        console.print(f"report: [bold]{html}[/]")
    return out_dir


# True when main() runs as the program (not called by a test): the process ends with the
# command, so what is loaded by then (the libraries, the compiled kernels) is frozen for the
# collector, whose full passes otherwise walk all of it (tens of ms each, and once at exit)
_ONE_SHOT = [False]


def _freeze_loaded() -> None:
    if _ONE_SHOT[0]:
        gc.freeze()


def _chart_worker() -> ChartWorker | None:
    from momentumbot.reporting.chart_worker import ChartWorker

    return ChartWorker.start()


StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Bar store folder (default: [data] store of the config)."),
]


@_app.command("backtest")
def backtest_command(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            help="Comma-separated tickers, or 'all' for every symbol in the store (default: the config's).",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First session, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last session, YYYY-MM-DD.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default: runs/backtest-<time>).")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write plots and report.html.")
    ] = True,
) -> None:
    """Backtest the strategy on minute bars from the store and write a run folder."""
    _run_backtest_cli(config, store, symbols, start, end, out, report=report)


@_app.command("demo")
def demo_command(
    store: Annotated[Path, typer.Option("--store", help="Where to put the sample bars.")] = Path(
        "sample_store"
    ),
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/demo"),
    symbols: Annotated[int, typer.Option("--symbols", help="How many synthetic symbols.")] = 10,
    sessions: Annotated[int, typer.Option("--sessions", help="How many sessions.")] = 20,
) -> None:
    """Generate the bundled synthetic sample bars (if not there yet) and backtest them."""
    worker = _chart_worker()  # first: its imports overlap the sample data's and the engine's
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import default_symbols, write_synthetic

    names = default_symbols(symbols)
    bars = BarStore(store)
    if not all(bars.has(s) for s in names):
        err_console.print(
            f"generating {symbols} symbols x {sessions} sessions of SYNTHETIC minute bars "
            f"into {store} (deterministic sample data, not market data)"
        )
        write_synthetic(bars, names, start="2024-01-02", n_sessions=sessions, seed=7, replace=True)
    note = "Demo on synthetic sample bars from momentumbot's generator: not market data."
    err_console.print(f"[yellow]{note}[/]")
    _run_backtest_cli(None, store, ",".join(names), None, None, out, notes=(note,), worker=worker)


@_app.command("precompile")
def precompile_command() -> None:
    """Compile the kernels into the on-disk cache now (about a minute, once per version), so
    the first backtest or trading run does not (`make install` runs this)."""
    from momentumbot.app.first_run import jit_mode

    if jit_mode() == "off":
        from momentumbot.domain.errors import ConfigError

        raise ConfigError(
            "MOMENTUMBOT_JIT=off: the kernels run as plain Python here, so nothing would be "
            "compiled; unset it (or set it to auto) and run precompile again"
        )
    from momentumbot.app.precompile import precompile
    from momentumbot.compiled import CACHE_DIR
    from momentumbot.optimize.fast import warm_compiled_code

    seconds = precompile(err_console.print, {"sweep": warm_compiled_code})
    err_console.print(f"compiled code is cached in {CACHE_DIR} ({seconds:.1f} s)")


def _data() -> None:
    from momentumbot.data.cli import data_app

    _app.add_typer(data_app, name="data")


def _report() -> None:
    from momentumbot.reporting.cli import report_app

    _app.add_typer(report_app, name="report")


def _notify() -> None:
    from momentumbot.notify.cli import notify_app

    _app.add_typer(notify_app, name="notify")


def _gateway() -> None:
    from momentumbot.gateway.cli import gateway_command

    _app.command("gateway")(gateway_command)


def _trade() -> None:
    from momentumbot.app.cli_trade import trade_command

    _app.command("trade")(trade_command)


def _stop() -> None:
    from momentumbot.app.cli_trade import stop_command

    _app.command("stop")(stop_command)


def _status() -> None:
    from momentumbot.monitor.status import status_command

    _app.command("status")(status_command)


def _dashboard() -> None:
    from momentumbot.monitor.cli import dashboard_command

    _app.command("dashboard")(dashboard_command)


def _optimize() -> None:
    from momentumbot.optimize.cli import optimize_command

    _app.command("optimize")(optimize_command)


# Subcommands whose modules are imported only when they run (or for --help): each pulls in
# its own libraries (pandas, the gateway, aiohttp, ...), which `backtest` and `demo` do not need.
_LAZY = {
    "data": _data,
    "report": _report,
    "notify": _notify,
    "gateway": _gateway,
    "trade": _trade,
    "stop": _stop,
    "status": _status,
    "dashboard": _dashboard,
    "optimize": _optimize,
}
_EAGER = {"config", "backtest", "demo", "precompile"}
_mounted: set[str] = set()


def _mount_subcommands(argv: list[str] | None = None) -> None:
    """Mount the subcommand that `argv` runs (every one for --help or an unknown word)."""
    words = [a for a in (argv or []) if not a.startswith("-")]
    name = words[0] if words else ""
    if name in _EAGER:
        return
    for key in [name] if name in _LAZY else list(_LAZY):
        if key not in _mounted:
            _mounted.add(key)
            _LAZY[key]()


def __getattr__(name: str) -> typer.Typer:
    """`from momentumbot.cli import app`: the app with every subcommand mounted."""
    if name == "app":
        _mount_subcommands(["--help"])
        return _app
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: runs a command and returns its exit code.

    Usage errors are reported by the command-line library itself (exit code 2); our own
    errors become one line on stderr with the exit code of their kind; anything else is a
    bug and keeps its traceback.
    """
    args = sys.argv[1:] if argv is None else argv
    _ONE_SHOT[0] = argv is None
    _mount_subcommands(args)
    try:
        _app(args=args, standalone_mode=True, prog_name="momentumbot")
    except MomentumbotError as exc:
        # escaped: "[portfolio] initial_cash" is the config's section, not rich markup
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    finally:
        _freeze_loaded()  # the collector's last full pass at exit (about 0.1 s) is skipped
    return 0


if __name__ == "__main__":
    sys.exit(main())

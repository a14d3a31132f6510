"""`momentumbot data ...`: import, list and generate bars in the store."""

from __future__ import annotations

import datetime as dt
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

data_app = typer.Typer(
    help="Bars in the local Parquet store: import, list, generate, check.", no_args_is_help=True
)

DEFAULT_STORE = Path("data/store")
StoreOpt = Annotated[
    Path, typer.Option("--store", help="Folder of the Parquet bar store.", show_default=True)
]


class FileFormat(StrEnum):
    csv = "csv"
    alphavantage = "alphavantage"


class BarLabel(StrEnum):
    start = "start"
    end = "end"
    auto = "auto"


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # pipes and logs: do not squeeze tables into 80 columns
        console = Console(width=160)
    return console


def _ny(ns: int) -> str:
    from momentumbot.data.calendar import to_exchange_time

    return str(to_exchange_time(int(ns)).strftime("%Y-%m-%d %H:%M"))


@data_app.command("import")
def import_command(
    files: Annotated[
        list[Path], typer.Argument(help="CSV files of 1-minute bars (may be gzipped).")
    ],
    symbol: Annotated[
        str | None,
        typer.Option(
            "--symbol",
            help="Ticker of the bars (a symbol column in the file replaces it; with one, it "
            "selects that symbol). Alpha Vantage: defaults to the file-name prefix, AAPL_1min.csv -> AAPL.",
        ),
    ] = None,
    fmt: Annotated[
        FileFormat, typer.Option("--format", help="csv (generic) or alphavantage.")
    ] = FileFormat.csv,
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone of naive timestamps.")
    ] = "America/New_York",
    label: Annotated[
        BarLabel | None,
        typer.Option(
            "--label",
            help="What a timestamp marks: the bar's start or end; auto detects it from the "
            "sessions' first and last bars. Default: start for csv, auto for alphavantage.",
            show_default=False,
        ),
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option(
            "--time-format",
            help="strptime format of the timestamps, e.g. '%Y%m%d %H%M%S' (default: ISO 8601).",
        ),
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Let new bars win over different stored bars."),
    ] = False,
) -> None:
    """Import 1-minute bars, normalised to UTC start labels; nothing is written if any file is bad."""
    from momentumbot.data.importers import import_files
    from momentumbot.data.store import BarStore

    t0 = time.perf_counter()
    results = import_files(
        BarStore(store),
        files,
        fmt=fmt.value,
        symbol=symbol,
        tz=tz,
        label=label.value if label else None,
        time_format=time_format,
        replace=replace,
    )
    elapsed = time.perf_counter() - t0
    table = Table(title=f"Imported into {store} (first/last bar: New York time, bar start)")
    for col in ("symbol", "file", "label"):
        table.add_column(col)
    for col in ("added", "unchanged", "total"):
        table.add_column(col, justify="right")
    table.add_column("first bar")
    table.add_column("last bar")
    for r in results:
        table.add_row(
            r.symbol,
            Path(r.file).name,
            r.label,
            f"{r.added:,}",
            f"{r.unchanged:,}",
            f"{r.total:,}",
            _ny(r.first_ns),
            _ny(r.last_ns),
        )
    console = _console()
    console.print(table)
    rows = sum(r.added + r.unchanged for r in results)
    console.print(f"{rows:,} bars read from {len(files)} file(s) in {elapsed:.2f} s")


@data_app.command("list")
def list_command(store: StoreOpt = DEFAULT_STORE) -> None:
    """Symbols in the store with their first and last bar, rows and sessions covered."""
    from momentumbot.data.calendar import TradingCalendar
    from momentumbot.data.store import BarStore

    bar_store = BarStore(store)
    symbols = bar_store.symbols()
    console = _console()
    if not symbols:
        console.print(
            f"no bars in {store}; add some with `momentumbot data import` or `data generate`"
        )
        return
    cal = TradingCalendar("XNYS")
    table = Table(title=f"Bars in {store} (New York time, bar start)")
    table.add_column("symbol")
    table.add_column("first bar")
    table.add_column("last bar")
    table.add_column("rows", justify="right")
    table.add_column("sessions", justify="right")
    total = 0
    for sym in symbols:
        info = bar_store.info(sym)
        ts = bar_store.read_arrays(sym, info.first_ns, info.last_ns + 1).ts
        idx = cal.session_of(ts)
        sessions = int(np.unique(idx[idx >= 0]).size)
        total += info.rows
        table.add_row(sym, _ny(info.first_ns), _ny(info.last_ns), f"{info.rows:,}", str(sessions))
    console.print(table)
    console.print(f"{len(symbols)} symbols, {total:,} bars")


@data_app.command("check")
def check_command(
    store: StoreOpt = DEFAULT_STORE,
    symbols: Annotated[
        str | None,
        typer.Option("--symbols", help="Comma-separated tickers to check (default: all)."),
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the findings, one row per symbol.")
    ] = None,
    first: Annotated[
        str | None,
        typer.Option(
            "--from", help="First session expected (YYYY-MM-DD; default: each symbol's first bar)."
        ),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option(
            "--to", help="Last session expected (YYYY-MM-DD; default: each symbol's last bar)."
        ),
    ] = None,
    jump_pct: Annotated[
        float,
        typer.Option(
            "--jump-pct", min=0, help="Flag moves between bars of a session above this %."
        ),
    ] = 5.0,
    overnight_jump_pct: Annotated[
        float,
        typer.Option(
            "--overnight-jump-pct", min=0, help="Flag gaps between sessions above this %."
        ),
    ] = 20.0,
) -> None:
    """Check the store per symbol: sessions covered, bars missing against the exchange calendar,
    duplicates, broken bars, zero-volume bars and suspicious jumps."""
    from momentumbot.data.calendar import TradingCalendar
    from momentumbot.data.quality import Thresholds, check_store, write_csv
    from momentumbot.data.store import BarStore
    from momentumbot.domain.errors import ConfigError, DataError

    bar_store = BarStore(store)
    names = _symbol_list(symbols) if symbols is not None else bar_store.symbols()
    if not names:
        raise DataError(f"no bars in {store}; nothing to check")
    days = []
    for option, text in (("--from", first), ("--to", last)):
        try:
            days.append(dt.date.fromisoformat(text) if text else None)
        except ValueError:
            raise ConfigError(f"{option}: {text!r} is not a date; write it as YYYY-MM-DD") from None
    results = check_store(
        bar_store,
        names,
        calendar=TradingCalendar("XNYS"),
        thresholds=Thresholds(jump_pct, overnight_jump_pct),
        start=days[0],
        end=days[1],
    )
    table = Table(title=f"Data check of {store} (regular sessions, New York time)")
    table.add_column("symbol")
    for col in ("bars", "sessions", "missing sessions", "missing bars", "coverage"):
        table.add_column(col, justify="right")
    for col in ("duplicates", "invalid", "zero volume", "jumps", "largest jump"):
        table.add_column(col, justify="right")
    table.add_column("status")
    for r in results:
        expected = r.covered_minutes + r.missing_bars
        cover = f"{100.0 * r.covered_minutes / expected:.2f}%" if expected else "-"
        jump = f"{r.largest_jump_pct:.1f}% {_ny(r.largest_jump_ns)}" if r.largest_jump_ns else "-"
        style = "red" if r.problems() else ("yellow" if r.findings() else "green")
        table.add_row(
            r.symbol,
            f"{r.bars:,}",
            f"{r.sessions_covered}/{r.sessions_expected}",
            str(r.sessions_missing),
            f"{r.missing_bars:,}",
            cover,
            str(r.duplicates),
            str(r.invalid + r.unordered),
            f"{r.zero_volume:,}",
            str(r.jumps + r.overnight_jumps),
            jump,
            f"[{style}]{r.error or r.status}[/]",
        )
    console = _console()
    console.print(table)
    if csv_path is not None:
        write_csv(results, csv_path)
        console.print(f"findings written to {csv_path}")
    bad = [r for r in results if r.problems()]
    rows = sum(r.bars for r in results)
    if bad:
        listed = "; ".join(f"{r.symbol}: {r.error or ', '.join(r.problems())}" for r in bad)
        raise DataError(
            f"{len(bad)} of {len(results)} symbol files are damaged ({listed}); import or "
            "fetch those symbols again with --replace"
        )
    noted = [r.symbol for r in results if r.findings()]
    tail = (
        "all clean"
        if not noted
        else f"findings for {len(noted)}: {', '.join(noted[:8])}{', ...' if len(noted) > 8 else ''}"
    )
    console.print(f"{store}: OK ({len(results)} symbols, {rows:,} bars); {tail}", highlight=False)


class FetchSource(StrEnum):
    alphavantage = "alphavantage"
    ib = "ib"


def _symbol_list(text: str) -> list[str]:
    from momentumbot.data.store import check_symbol
    from momentumbot.domain.errors import ConfigError

    names = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError("--symbols: no symbols given; list tickers like AAPL,MSFT")
    seen: list[str] = []
    for name in names:
        check_symbol(name)
        if name not in seen:
            seen.append(name)
    return seen


def _progress(label: str) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@data_app.command("fetch")
def fetch_command(
    symbols: Annotated[
        str, typer.Option("--symbols", help="Comma-separated tickers, e.g. AAPL,MSFT.")
    ],
    first: Annotated[
        str,
        typer.Option(
            "--from",
            help="First month (YYYY-MM); for --source ib also a day (YYYY-MM-DD).",
        ),
    ],
    last: Annotated[
        str,
        typer.Option("--to", help="Last month (YYYY-MM), inclusive; for --source ib also a day."),
    ],
    source: Annotated[
        FetchSource, typer.Option("--source", help="alphavantage or ib (TWS / IB Gateway).")
    ] = FetchSource.alphavantage,
    extended_hours: Annotated[
        bool,
        typer.Option(
            "--extended-hours",
            help="Alpha Vantage: include pre- and post-market bars (04:00-20:00 New York).",
        ),
    ] = False,
    adjusted: Annotated[
        bool,
        typer.Option(
            "--adjusted/--unadjusted",
            help="Alpha Vantage: split- and dividend-adjusted prices (the provider's default) "
            "or raw ones.",
        ),
    ] = True,
    label: Annotated[
        BarLabel,
        typer.Option(
            "--label",
            help="Alpha Vantage: what its timestamps mark; auto detects it per answer.",
        ),
    ] = BarLabel.auto,
    refresh: Annotated[
        bool,
        typer.Option(
            "--refresh",
            help="Fetch again what the store already holds (with --replace: take in the "
            "provider's corrections or a new split adjustment).",
        ),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Folder of the Parquet bar store (default: data.store)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="TOML config file (its data section; defaults if omitted)."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Let fetched bars win over different stored bars.")
    ] = False,
    max_requests: Annotated[
        int | None,
        typer.Option(
            "--max-requests",
            min=1,
            help="Alpha Vantage: stop cleanly after this many requests (a daily allowance).",
        ),
    ] = None,
    chunk_days: Annotated[
        int,
        typer.Option("--chunk-days", min=1, max=5, help="IB: sessions per history request."),
    ] = 1,
) -> None:
    """Fetch 1-minute bars from a provider into the store; reruns fetch only what is missing."""
    import os

    from momentumbot.config.loader import load_config
    from momentumbot.data.store import BarStore

    cfg = load_config(config)
    names = _symbol_list(symbols)
    bar_store = BarStore(store if store is not None else Path(cfg.data.store))
    if source is FetchSource.ib:
        _fetch_ib(cfg.data, bar_store, names, first, last, chunk_days, replace, refresh)
        return
    from momentumbot.data.alphavantage import (
        AlphaVantageFetcher,
        AlphaVantageSettings,
        months_between,
    )

    months = months_between(first, last)
    settings = AlphaVantageSettings.from_config(cfg.data, os.environ)
    fetcher = AlphaVantageFetcher(settings, bar_store)
    t0 = time.perf_counter()
    with _progress("fetch") as bar:
        task = bar.add_task("", total=len(names) * len(months))

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        report = fetcher.fetch(
            names,
            months,
            extended_hours=extended_hours,
            adjusted=adjusted,
            label=label.value,
            replace=replace,
            refresh=refresh,
            max_requests=max_requests,
            progress=progress,
        )
    _print_av_report(report, bar_store.root, time.perf_counter() - t0)


def _print_av_report(report: Any, root: Path, elapsed: float) -> None:
    from momentumbot.data.alphavantage import describe_stop, report_rows
    from momentumbot.domain.errors import ConfigError, DataError, RetryLaterError

    table = Table(title=f"Alpha Vantage into {root}")
    table.add_column("symbol")
    for col in ("months fetched", "already stored", "not fetched", "bars", "added", "unchanged"):
        table.add_column(col, justify="right")
    table.add_column("status")
    for r in report_rows(report):
        table.add_row(
            r["symbol"],
            str(r["fetched"]),
            str(r["skipped"]),
            str(r["left"]),
            f"{r['bars']:,}",
            f"{r['added']:,}",
            f"{r['unchanged']:,}",
            r["status"],
        )
    console = _console()
    console.print(table)
    console.print(
        f"{len(report.fetched)} symbol-months fetched, {len(report.skipped)} already stored, "
        f"{report.requests} requests ({report.retries} retries) in {elapsed:.1f} s",
        highlight=False,
    )
    if report.stop_kind is not None:
        err: type[Exception] = (
            ConfigError if report.stop_kind in ("api_key", "http", "refused") else RetryLaterError
        )
        raise err(describe_stop(report))
    if report.failed:
        listed = "; ".join(f"{s}: {why}" for s, why in report.failed.items())
        raise DataError(
            f"{len(report.failed)} symbol(s) failed ({listed}); the others are stored. Fix or "
            "drop them and run the same command again (stored months are skipped)"
        )


def _fetch_ib(
    data_cfg: Any,
    bar_store: Any,
    names: list[str],
    first: str,
    last: str,
    chunk_days: int,
    replace: bool,
    refresh: bool,
) -> None:
    import asyncio

    from momentumbot.data.ib_history import (
        IbHistoryFetcher,
        IbHistorySettings,
        describe_stop,
        parse_day,
    )
    from momentumbot.domain.errors import ConfigError, DataError, RetryLaterError

    start = parse_day(first, "--from", last=False)
    end = parse_day(last, "--to", last=True)
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}")
    settings = IbHistorySettings.from_config(data_cfg, chunk_days)
    fetcher = IbHistoryFetcher(settings, bar_store)
    t0 = time.perf_counter()
    with _progress("fetch") as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        report = asyncio.run(
            fetcher.fetch(names, start, end, replace=replace, refresh=refresh, progress=progress)
        )
    elapsed = time.perf_counter() - t0
    per: dict[str, list[int]] = {n: [0, 0, 0, 0, 0] for n in names}
    for c in report.fetched:
        row = per[c.symbol]
        row[0] += len(c.sessions)
        row[2] += c.bars
        row[3] += c.added
        row[4] += c.unchanged
    for sym, _ in report.skipped:
        per[sym][1] += 1
    table = Table(title=f"IB history (1 min TRADES, regular hours) into {bar_store.root}")
    table.add_column("symbol")
    for col in ("sessions fetched", "already stored", "bars", "added", "unchanged"):
        table.add_column(col, justify="right")
    table.add_column("status")
    left = {s for s, _ in report.not_fetched}
    for sym, (fetched, skipped, bars, added, unchanged) in per.items():
        status = report.failed.get(sym) or ("stopped" if sym in left else "ok")
        table.add_row(
            sym, str(fetched), str(skipped), f"{bars:,}", f"{added:,}", f"{unchanged:,}", status
        )
    console = _console()
    console.print(table)
    console.print(
        f"{report.sessions_fetched} symbol-sessions fetched in {report.requests} requests "
        f"({report.pacing_violations} pacing violations, {report.retries} retries) "
        f"in {elapsed:.1f} s",
        highlight=False,
    )
    if report.not_closed:
        console.print(
            f"{len(report.not_closed)} symbol-sessions are not closed yet at the server; "
            "fetch them after the close"
        )
    if report.stop_kind is not None:
        raise RetryLaterError(describe_stop(report))
    if report.failed:
        listed = "; ".join(f"{s}: {why}" for s, why in report.failed.items())
        raise DataError(
            f"{len(report.failed)} symbol(s) failed ({listed}); the others are stored. Fix or "
            "drop them and run the same command again (stored sessions are skipped)"
        )


@data_app.command("generate")
def generate_command(
    symbols: Annotated[
        int, typer.Option("--symbols", help="How many synthetic symbols (SYN001, SYN002, ...).")
    ] = 20,
    symbol_list: Annotated[
        str | None,
        typer.Option("--symbol-list", help="Comma-separated tickers instead of --symbols."),
    ] = None,
    sessions: Annotated[int, typer.Option("--sessions", help="How many sessions.")] = 250,
    start: Annotated[
        str, typer.Option("--start", help="First session (YYYY-MM-DD).")
    ] = "2024-01-02",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bars).")] = 7,
    store: StoreOpt = DEFAULT_STORE,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite different stored bars of these symbols.")
    ] = False,
) -> None:
    """Write deterministic SYNTHETIC minute bars (not market data) for demos, tests and benchmarks."""
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import SYNTHETIC_NOTICE, default_symbols, write_synthetic
    from momentumbot.domain.errors import DataError

    if symbol_list is not None:
        from momentumbot.domain.symbols import split_symbols

        names = split_symbols(symbol_list)
        if not names:
            raise DataError("--symbol-list: no symbols given")
        if len(set(names)) != len(names):
            raise DataError("--symbol-list: a symbol appears twice")
    else:
        names = default_symbols(symbols)
    t0 = time.perf_counter()
    bar_store = BarStore(store)
    written = write_synthetic(bar_store, names, start, sessions, seed, replace=replace)
    elapsed = time.perf_counter() - t0
    bars = sum(bar_store.info(s).rows for s in written)
    shown = ", ".join(written[:6]) + (", ..." if len(written) > 6 else "")
    console = _console()
    console.print(
        f"[bold yellow]SYNTHETIC:[/] {SYNTHETIC_NOTICE}.\n"
        f"Wrote {len(written)} symbols ({shown}) x {sessions} sessions from {start}, "
        f"{bars:,} bars in total, seed {seed}, to {store} in {elapsed:.1f} s.",
        highlight=False,
    )

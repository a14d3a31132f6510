"""`momentumbot status [RUN_DIR]`: one screen on a trading run, from its journal (while the bot
runs, or after)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from momentumbot.domain.errors import ConfigError
from momentumbot.journal.journal import JOURNAL_NAME

if TYPE_CHECKING:
    from momentumbot.monitor.snapshot import RunSnapshot


def newest_run(root: Path = Path("runs")) -> Path:
    """The trading run folder written to last under `root`."""
    candidates = sorted(
        (p for p in root.glob("trade-*") if (p / JOURNAL_NAME).is_file()),
        key=lambda p: (p / JOURNAL_NAME).stat().st_mtime,
    )
    if not candidates:
        raise ConfigError(
            f"no trading run under {root}/; give the run folder: momentumbot status DIR"
        )
    return candidates[-1]


def render(snap: RunSnapshot) -> list[Any]:
    """The snapshot as rich renderables: a header, positions, working orders, recent fills."""
    from rich.table import Table
    from rich.text import Text

    alive = "running" if snap.running else "not running"
    head = Text.assemble(
        (f"momentumbot {snap.kind} run {snap.run_id}", "bold"),
        f" — account {snap.account or '?'} — {snap.state or '?'} ({alive})\n",
        f"minutes dealt with up to {snap.progress or '-'} New York; session {snap.session or '-'}\n",
        f"equity {snap.equity:,.2f}  cash {snap.cash:,.2f}",
        f"  today {snap.today_pnl:+,.2f}" if snap.today_pnl is not None else "",
        f"  orders {snap.orders:,}  fills {snap.fills:,}",
    )
    if snap.halted:
        head.append(f"\nHALTED: {snap.halted} (momentumbot trade --rearm lifts it)", "bold red")
    if snap.buys_halted:
        head.append(f"\nBUYS HALTED: {snap.buys_halted}", "bold red")
    if snap.stop_reason:
        head.append(f"\nstopped: {snap.stop_reason}")
    out: list[Any] = [head]
    pos = Table(title="positions", expand=False)
    for col in ("symbol", "quantity", "last", "value"):
        pos.add_column(col, justify="left" if col == "symbol" else "right")
    for p in snap.positions:
        pos.add_row(p.symbol, f"{p.quantity:,}", f"{p.last:.2f}", f"{p.value:,.0f}")
    if not snap.positions:
        pos.caption = "flat"
    out.append(pos)
    if snap.working:
        wk = Table(title="working orders", expand=False)
        for col in ("order", "symbol", "side", "quantity", "filled", "reason", "state", "decided"):
            wk.add_column(col)
        for o in snap.working:
            wk.add_row(o.order_ref, o.symbol, o.side, f"{o.quantity:,}", f"{o.filled:,}",
                       o.reason, o.state, o.decided)  # fmt: skip
        out.append(wk)
    if snap.recent_fills:
        fl = Table(title=f"last {len(snap.recent_fills)} fills", expand=False)
        for col in ("minute", "symbol", "side", "quantity", "price", "order"):
            fl.add_column(col)
        for f in snap.recent_fills:
            fl.add_row(f.time, f.symbol, f.side, f"{f.quantity:,}", f"{f.price:.2f}", f.order_ref)
        out.append(fl)
    return out


def status_command(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="Run folder (default: the newest runs/trade-*)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the snapshot as JSON instead of tables.")
    ] = False,
) -> None:
    """One screen on a trading run from its journal: state, equity, positions, working orders,
    the last fills and any halt. Works while the bot runs and after."""
    from momentumbot.monitor.snapshot import read_run

    snap = read_run(run_dir if run_dir is not None else newest_run())
    if as_json:
        import json

        typer.echo(json.dumps(snap.to_json(), indent=2))
        return
    from rich.console import Console

    console = Console()
    for part in render(snap):
        console.print(part)

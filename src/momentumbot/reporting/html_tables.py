"""The report's HTML markup apart from the page itself: escaping, the figures, trades,
P&L, monthly and run tables, notices and the headline (numbers at full precision)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from momentumbot.reporting.console import count, figure_label, format_figure, percent, ratio, usd
from momentumbot.reporting.metrics import (
    EXCHANGE_TZ,
    FIGURE_NAMES,
    monthly_returns,
)
from momentumbot.reporting.run_data import RunData

MAX_TRADE_ROWS = 5000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def figures_table(figures: Mapping[str, Any], benchmark: Mapping[str, Any] | None) -> str:
    bench = benchmark or {}
    rows = []
    for name in FIGURE_NAMES:
        rows.append(
            f'<tr data-figure="{esc(name)}"><th scope="row">{esc(figure_label(name))}</th>'
            f"<td>{esc(format_figure(name, figures.get(name)))}</td>"
            f"<td>{esc(format_figure(name, bench.get(name)))}</td></tr>"
        )
    return (
        '<table class="figures"><thead><tr><th>Figure</th><th>Strategy</th>'
        "<th>Buy &amp; hold (equal weight)</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _cell(text: str, sort_value: Any = None, cls: str = "") -> str:
    attr = "" if sort_value is None else f' data-v="{esc(sort_value)}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{attr}{klass}>{esc(text)}</td>"


def _money_cell(value: Any) -> str:
    number = float(value) if value is not None and value == value else float("nan")
    cents = round(number, 2) if math.isfinite(number) else 0.0
    cls = "gain" if cents > 0 else "loss" if cents < 0 else ""
    return _cell(usd(number), "" if math.isnan(number) else f"{number:.6f}", cls)


def _plain_money_cell(number: float) -> str:
    """:func:`_money_cell` of a float, without escaping (digits, "$", ",", "-", "." and
    "n/a" need none): the same markup for the trade list's thousands of rows."""
    if not math.isfinite(number):
        return _money_cell(number)
    cents = round(number, 2)
    cls = ' class="gain"' if cents > 0 else ' class="loss"' if cents < 0 else ""
    return f'<td data-v="{number:.6f}"{cls}>{usd(number)}</td>'


def _header(columns: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f'<th data-type="{kind}" class="{"l" if kind == "text" else ""}" title="click to sort">'
        f"{esc(label)}</th>"
        for label, kind in columns
    )
    return f"<thead><tr>{cells}</tr></thead>"


def trades_table(trips: pd.DataFrame, limit: int = MAX_TRADE_ROWS) -> tuple[str, int]:
    """The sortable round-trip list; returns the markup and how many rows it holds."""
    columns = [
        ("#", "num"), ("Symbol", "text"), ("Entry (ET)", "text"), ("Exit (ET)", "text"),
        ("Held (min)", "num"), ("Max shares", "num"), ("Avg entry", "num"),
        ("Avg exit", "num"), ("P&L", "num"), ("Commissions", "num"), ("Fills", "num"),
    ]  # fmt: skip
    shown = trips.head(limit)
    rows: list[str] = []
    entry = pd.DatetimeIndex(pd.to_datetime(shown["entry_time"], utc=True))
    exit_ = pd.DatetimeIndex(pd.to_datetime(shown["exit_time"], utc=True))
    entry_ny: list[str] = list(entry.tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M"))
    exit_ny: list[str] = list(exit_.tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M"))
    # numbers and dates need no escaping: only the symbol and the formatted money go
    # through esc(), which keeps a 5,000-row table quick
    entry_ns = entry.as_unit("ns").asi8.tolist()
    exit_ns = exit_.as_unit("ns").asi8.tolist()
    symbols = [esc(str(s)) for s in shown["symbol"].tolist()]
    held = shown["holding_minutes"].to_numpy(dtype=float).tolist()
    quantity = shown["quantity_max"].to_numpy().tolist()
    entry_price = shown["avg_entry_price"].to_numpy(dtype=float).tolist()
    exit_price = shown["avg_exit_price"].to_numpy(dtype=float).tolist()
    pnl = shown["pnl"].to_numpy(dtype=float).tolist()
    commissions = shown["commissions"].to_numpy(dtype=float).tolist()
    fills = shown["fills"].to_numpy().tolist()
    for i in range(len(shown)):
        rows.append(
            f'<tr class="trade"><td data-v="{i + 1}">{i + 1}</td>'
            f'<td class="l">{symbols[i]}</td>'
            f'<td data-v="{entry_ns[i]}" class="l">{entry_ny[i]}</td>'
            f'<td data-v="{exit_ns[i]}" class="l">{exit_ny[i]}</td>'
            f'<td data-v="{held[i]}">{held[i]:,.0f}</td>'
            f'<td data-v="{int(quantity[i])}">{count(quantity[i])}</td>'
            f'<td data-v="{entry_price[i]}">{entry_price[i]:,.4f}</td>'
            f'<td data-v="{exit_price[i]}">{exit_price[i]:,.4f}</td>'
            + _plain_money_cell(pnl[i])
            + f'<td data-v="{commissions[i]}">{usd(commissions[i])}</td>'
            f'<td data-v="{int(fills[i])}">{int(fills[i])}</td></tr>'
        )
    table = (
        f'<table class="sortable trades" id="trades">{_header(columns)}<tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    return table, len(shown)


def pnl_table(pnl: pd.DataFrame) -> str:
    columns = [
        ("Symbol", "text"), ("Realised P&L", "num"), ("Unrealised P&L", "num"),
        ("Total P&L", "num"), ("Commissions", "num"), ("Slippage", "num"), ("Buys", "num"),
        ("Sells", "num"), ("Round trips", "num"), ("Traded value", "num"),
    ]  # fmt: skip
    rows = []
    for rec in pnl.to_dict("records"):
        symbol = str(rec["symbol"])
        rows.append(
            f'<tr data-symbol="{esc(symbol)}">'
            f'<td data-v="{esc(symbol)}"><a href="#symbol-chart" class="pick" data-symbol="{esc(symbol)}">{esc(symbol)}</a></td>'
            + _money_cell(rec["realised_pnl"])
            + _money_cell(rec["unrealised_pnl"])
            + _money_cell(rec["total_pnl"])
            + _cell(usd(rec["commissions"]), float(rec["commissions"]))
            + _cell(usd(rec["slippage"]), float(rec["slippage"]))
            + _cell(count(rec["buys"]), int(rec["buys"]))
            + _cell(count(rec["sells"]), int(rec["sells"]))
            + _cell(count(rec["round_trips"]), int(rec["round_trips"]))
            + _cell(usd(rec["traded_value"]), float(rec["traded_value"]))
            + "</tr>"
        )
    return (
        f'<table class="sortable" id="pnl-table">{_header(columns)}<tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def monthly_table(run: RunData) -> str:
    """Month-by-month returns (rows: years), or '' when the run is within one month."""
    monthly = monthly_returns(run.equity, start_equity=run.start_equity)
    if len(monthly) < 2:
        return ""
    periods = pd.PeriodIndex(monthly.index)
    years = sorted({int(p.year) for p in periods})
    by_cell = {
        (int(p.year), int(p.month)): float(v)
        for p, v in zip(periods, monthly.to_numpy(), strict=True)
    }
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    body = []
    for year in years:
        cells = []
        for month in range(1, 13):
            value = by_cell.get((year, month))
            if value is None:
                cells.append("<td></td>")
            else:
                cls = "gain" if value > 0 else "loss" if value < 0 else ""
                cells.append(f'<td class="{cls}">{esc(percent(value))}</td>')
        body.append(f"<tr><th scope='row'>{year}</th>{''.join(cells)}</tr>")
    return (
        '<h3>Monthly returns</h3><table class="monthly"><thead><tr><th>Year</th>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def run_table(run: RunData) -> str:
    info: Mapping[str, Any] = run.summary.get("run") or {}
    rows = [("Run folder", str(run.run_dir.resolve())), ("Kind", run.kind)]
    labels = {
        "version": "momentumbot version",
        "first_session": "First session",
        "last_session": "Last session",
        "warmup_sessions": "Warm-up sessions (not traded)",
        "bars_used": "Bars read",
        "orders": "Orders",
        "fills": "Fills",
        "store": "Bar store",
        "engine_seconds": "Engine time (s)",
    }
    for key, label in labels.items():
        if key in info and info[key] is not None:
            value = info[key]
            rows.append(
                (label, count(value) if key in ("bars_used", "orders", "fills") else str(value))
            )
    symbols = run.symbols
    rows.append((f"Symbols ({len(symbols)})", ", ".join(symbols)))
    body = "".join(f"<tr><th scope='row'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="info">{body}</table>'


def notices_block(notices: Sequence[str]) -> str:
    if not notices:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notices)
    return f'<section class="notices" id="notices"><h2>Please note</h2><ul>{items}</ul></section>'


def headline(run: RunData) -> str:
    f = run.figures
    b = run.benchmark_figures or {}
    cards = [
        (
            "Total return",
            percent(f.get("total_return")),
            f"buy & hold {percent(b.get('total_return'))}",
        ),
        ("Final equity", usd(f.get("final_equity")), f"from {usd(f.get('start_equity'))}"),
        ("Sharpe", ratio(f.get("sharpe")), f"buy & hold {ratio(b.get('sharpe'))}"),
        (
            "Max drawdown",
            percent(f.get("max_drawdown")),
            f"buy & hold {percent(b.get('max_drawdown'))}",
        ),
        ("Round trips", count(f.get("round_trips")), f"win rate {percent(f.get('win_rate'))}"),
        (
            "Costs",
            usd((f.get("commissions") or 0) + (f.get("slippage") or 0)),
            "commissions + slippage",
        ),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div><div class="s">{esc(s)}</div></div>'
            for k, v, s in cards
        )
        + "</div>"
    )

"""report.html: one self-contained page (inline Plotly, data and styles; no network).

The page shows the run's figures beside the benchmark's (from summary.json, i.e. from
:mod:`momentumbot.reporting.metrics`), zoomable charts in New York time, sortable tables
of trades and P&L by symbol, and the run's config. Chart data is thinned for drawing;
every number in a table is the full-precision figure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from momentumbot.reporting.chart_data import CapitalBuckets
from momentumbot.reporting.chart_payloads import (
    allocation_payload,
    daily_payload,
    equity_payload,
    json_numbers,
    pnl_payload,
    range_breaks,
    symbol_payload,
)
from momentumbot.reporting.console import count
from momentumbot.reporting.html_tables import (
    esc,
    figures_table,
    headline,
    monthly_table,
    notices_block,
    pnl_table,
    run_table,
    trades_table,
)
from momentumbot.reporting.run_data import RunData


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """Plotly's minified bundle, inlined once per page (about 5 MB)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


__all__ = [
    "esc",
    "json_numbers",
    "page",
    "range_breaks",
    "render_report",
    "symbol_payload",
    "trades_table",
]


def _json_script(element_id: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    text = text.replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def page(title: str, body: str, data: Mapping[str, Any], script: str) -> str:
    """A whole self-contained page: styles, Plotly, the data and the page's script."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        + body
        + _json_script("report-data", data)
        + f"<script>{plotly_js()}</script>"
        + f"<script>{COMMON_JS}\n{script}</script>"
        + "</body></html>\n"
    )


def render_report(
    run: RunData,
    *,
    capital: CapitalBuckets,
    symbol_data: Mapping[str, Any],
    notices: Sequence[str],
    plot_files: Sequence[Path],
) -> str:
    """The HTML of report.html."""
    table, shown = trades_table(run.trips)
    all_notices = list(notices)
    if len(run.trips) > shown:
        all_notices.append(
            f"The trade list shows the first {count(shown)} of {count(len(run.trips))} round "
            "trips (by entry time); all of them are in round_trips.csv."
        )
    all_notices.append(
        "Charts draw at most a few thousand points per line (each bucket of minutes keeps "
        "its low and its high); every figure and table uses every minute."
    )
    data = {
        "breaks": range_breaks(run.axis),
        "equity": equity_payload(run),
        "allocation": allocation_payload(run, capital),
        "pnl": pnl_payload(run),
        "daily": daily_payload(run),
        "symbols": symbol_data,
    }
    info: Mapping[str, Any] = run.summary.get("run") or {}
    first, last = info.get("first_session"), info.get("last_session")
    if not first and run.axis.n_sessions:
        first, last = (
            f"{run.axis.session_dates[0]:%Y-%m-%d}",
            f"{run.axis.session_dates[-1]:%Y-%m-%d}",
        )
    period = f"{first} to {last}" if first != last else f"{first}"
    subtitle = (
        f"{run.kind}, {len(run.symbols)} symbols, {count(run.axis.n_sessions)} "
        f"session{'s' if run.axis.n_sessions != 1 else ''} ({period}, New York time)"
    )
    traded = list(symbol_data)
    busiest = max(traded, key=lambda s: len(symbol_data[s]["fills"]["t"])) if traded else None
    options = "".join(
        f'<option value="{esc(s)}"{" selected" if s == busiest else ""}>{esc(s)}</option>'
        for s in traded
    )
    links = " · ".join(
        f'<a href="{esc(p.relative_to(run.run_dir).as_posix())}">{esc(p.relative_to(run.run_dir).as_posix())}</a>'
        for p in plot_files
        if p.parent.name != "symbols"
    )
    symbol_section = (
        '<p class="empty">No traded symbols: nothing to draw.</p>'
        if not traded
        else (
            f'<label>Symbol <select id="symbol-select">{options}</select></label>'
            f' <span class="hint">{len(traded)} traded; drag to zoom, double-click to reset; '
            "PNG of each in plots/symbols/</span>"
            '<div id="symbol-info" class="hint"></div><div id="symbol-chart" class="chart tall"></div>'
        )
    )
    trades_section = (
        '<p class="empty">No round trips: the strategy completed no trade in this run.</p>'
        if len(run.trips) == 0
        else f'<p class="hint">Click a column to sort. Times are New York (ET).</p><div class="scroll">{table}</div>'
    )
    pnl_section = (
        '<p class="empty">No trades: no P&amp;L by symbol.</p>'
        if len(run.pnl) == 0
        else f'<div id="pnl-chart" class="chart"></div><div class="scroll">{pnl_table(run.pnl)}</div>'
    )
    body = f"""
<header><h1>{esc(run.run_dir.name)}: momentumbot report</h1><p class="sub">{esc(subtitle)}</p></header>
<nav><a href="#summary">Summary</a><a href="#equity">Equity</a><a href="#allocation">Allocation</a>
<a href="#pnl">P&amp;L by symbol</a><a href="#returns">Returns</a><a href="#symbols">Symbols</a>
<a href="#trades">Trades</a><a href="#config">Config</a></nav>
<main>
{notices_block(all_notices)}
<section id="summary"><h2>Summary</h2>{headline(run)}{figures_table(run.figures, run.benchmark_figures)}</section>
<section id="equity"><h2>Equity and drawdown</h2><p class="hint">Strategy against equal-weight
buy &amp; hold of the same symbols. Drag to zoom, double-click to reset.</p>
<div id="equity-chart" class="chart tall"></div></section>
<section id="allocation"><h2>Capital by symbol</h2><p class="hint">Positions marked at the last
close, averaged over buckets of minutes, cash on top: the top edge is equity.</p>
<div id="allocation-chart" class="chart"></div></section>
<section id="pnl"><h2>P&amp;L by symbol</h2>{pnl_section}</section>
<section id="returns"><h2>Returns by session</h2><div id="daily-chart" class="chart"></div>{monthly_table(run)}</section>
<section id="symbols"><h2>Price, band and trades by symbol</h2>{symbol_section}</section>
<section id="trades-list"><h2 id="trades-title">Trades ({count(len(run.trips))} round trips)</h2>{trades_section}</section>
<section id="config"><h2>Run and config</h2>{run_table(run)}<h3>config.toml</h3>
<pre>{esc(run.config_text or "(no config.toml in the run folder)")}</pre>
<p class="hint">PNG charts: {links}</p></section>
</main>"""
    return page(f"{run.run_dir.name}: momentumbot report", body, data, REPORT_JS)


CSS = """
:root{--ink:#1d2430;--muted:#5b6472;--line:#e3e6ea;--gain:#1e7d32;--loss:#c62828;--accent:#1f5fa8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:#f6f7f9}
header{padding:18px 28px 6px;background:#fff;border-bottom:1px solid var(--line)}h1{margin:0;font-size:22px}
.sub{margin:4px 0 8px;color:var(--muted)}nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:6px 28px}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}main{padding:8px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:14px 18px;margin:16px 0}
h2{margin:0 0 10px;font-size:18px}h3{font-size:15px;margin:16px 0 6px}.hint{color:var(--muted);font-size:12.5px;margin:2px 0 8px}
.notices{border-color:#f0c36d;background:#fff8e6}.notices li{margin:3px 0}.empty{color:var(--muted);font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:150px}
.card .k{font-size:12px;color:var(--muted)}.card .v{font-size:20px;font-weight:600}.card .s{font-size:12px;color:var(--muted)}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}thead th{position:sticky;top:0;background:#f0f2f5;cursor:default}
table.sortable thead th{cursor:pointer;user-select:none}table.sortable th.asc::after{content:" \\25B2"}table.sortable th.desc::after{content:" \\25BC"}
.figures td,.figures th{min-width:140px}.info th{text-align:left;color:var(--muted);font-weight:normal}.info td{text-align:left;white-space:normal}
td.l,th.l{text-align:left}.gain{color:var(--gain)}.loss{color:var(--loss)}.scroll{max-height:560px;overflow:auto;border:1px solid var(--line)}
.monthly td{min-width:70px}pre{background:#f6f8fa;border:1px solid var(--line);padding:10px;overflow:auto;max-height:420px}
.chart{width:100%;height:440px}.chart.tall{height:600px}select{font:inherit;padding:2px 6px}
"""

COMMON_JS = r"""
"use strict";
const D = JSON.parse(document.getElementById("report-data").textContent);
const MIN = 60000;
const ms = (a) => a.map((v) => v * MIN);
const CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
function timeAxis(extra) {
  const axis = {type: "date", rangebreaks: (D.breaks || []).map((b) => ({values: ms(b.values), dvalue: b.dvalue * MIN})),
    hoverformat: "%Y-%m-%d %H:%M ET", gridcolor: "#eee"};
  return Object.assign(axis, extra || {});
}
function sortTable(table, col, th) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const dir = th.classList.contains("asc") ? "desc" : "asc";
  table.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
  th.classList.add(dir);
  const num = th.dataset.type === "num";
  const key = (row) => {
    const cell = row.cells[col];
    const raw = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
    if (!num) return raw;
    const v = parseFloat(raw);
    return Number.isNaN(v) ? -Infinity : v;
  };
  const keyed = rows.map((r) => [key(r), r]);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) * (dir === "asc" ? 1 : -1));
  const frag = document.createDocumentFragment();
  keyed.forEach((k) => frag.appendChild(k[1]));
  body.appendChild(frag);
}
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((th, col) => th.addEventListener("click", () => sortTable(table, col, th)));
});
"""

REPORT_JS = r"""
function equityChart() {
  const e = D.equity;
  const traces = [{x: ms(e.strategy.t), y: e.strategy.y, name: "Strategy", mode: "lines", line: {color: "#1f5fa8", width: 1.5},
    hovertemplate: "$%{y:,.2f}"}];
  if (e.benchmark) traces.push({x: ms(e.benchmark.t), y: e.benchmark.y, name: "Buy & hold (equal weight)",
    mode: "lines", line: {color: "#8c8c8c", width: 1.2}, hovertemplate: "$%{y:,.2f}"});
  traces.push({x: ms(e.drawdown.t), y: e.drawdown.y, name: "Strategy drawdown", yaxis: "y2", fill: "tozeroy",
    mode: "lines", line: {color: "#d0342c", width: 0.8}, fillcolor: "rgba(208,52,44,0.3)", hovertemplate: "%{y:.2%}"});
  if (e.benchmark_drawdown) traces.push({x: ms(e.benchmark_drawdown.t), y: e.benchmark_drawdown.y, yaxis: "y2",
    name: "Buy & hold drawdown", mode: "lines", line: {color: "#8c8c8c", width: 0.8}, hovertemplate: "%{y:.2%}"});
  Plotly.newPlot("equity-chart", traces, {
    margin: {l: 70, r: 20, t: 10, b: 40}, hovermode: "x unified", legend: {orientation: "h", y: 1.06},
    xaxis: timeAxis({anchor: "y2"}), yaxis: {domain: [0.34, 1], title: {text: "Equity (USD)"}, tickformat: "$,.0f"},
    yaxis2: {domain: [0, 0.27], title: {text: "Drawdown"}, tickformat: ".1%"},
    shapes: [{type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: e.start, y1: e.start, line: {dash: "dash", width: 1, color: "#444"}}],
  }, CONFIG);
}
function allocationChart() {
  const a = D.allocation;
  if (!a.layers.length) return;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79"];
  const x = ms(a.t);
  const traces = a.layers.map((layer, i) => {
    const last = i === a.layers.length - 1;
    const other = !last && layer.name.indexOf("other symbols") >= 0;
    const colour = last ? "#d9d9d9" : other ? "#6f6f6f" : palette[i % palette.length];
    return {x: x, y: layer.y, name: layer.name, stackgroup: "capital", line: {width: 0, color: colour},
      fillcolor: colour, hovertemplate: "$%{y:,.0f}"};
  });
  Plotly.newPlot("allocation-chart", traces, {
    margin: {l: 70, r: 20, t: 10, b: 40}, hovermode: "x unified", legend: {traceorder: "reversed"},
    xaxis: timeAxis(), yaxis: {title: {text: "Capital (USD)"}, tickformat: "$,.0f"},
  }, CONFIG);
}
function pnlChart() {
  const p = D.pnl;
  if (!p.symbols.length) return;
  const el = document.getElementById("pnl-chart");
  el.style.height = Math.max(260, 26 * p.symbols.length + 110) + "px";
  Plotly.newPlot(el, [
    {type: "bar", orientation: "h", y: p.symbols, x: p.realised, name: "Realised P&L, net of commissions",
      marker: {color: p.realised.map((v) => (v >= 0 ? "#2a9d3a" : "#d0342c"))}, hovertemplate: "%{y}: $%{x:,.2f}"},
    {type: "bar", orientation: "h", y: p.symbols, x: p.commissions.map((v) => -v), name: "Commissions (as a cost)",
      marker: {color: "#8c8c8c"}, hovertemplate: "%{y}: $%{x:,.2f}"},
  ], {barmode: "group", margin: {l: 80, r: 20, t: p.note ? 60 : 36, b: 44},
    legend: {orientation: "h", x: 0, y: 1, yanchor: "bottom"},
    title: p.note ? {text: p.note, font: {size: 12}, x: 0.01, y: 0.99, yanchor: "top"} : undefined,
    xaxis: {title: {text: "USD"}, tickformat: "$,.0f"}, yaxis: {type: "category", automargin: true}}, CONFIG);
}
function dailyChart() {
  const d = D.daily;
  if (!d.dates.length) return;
  const traces = [{type: "bar", x: d.dates, y: d.strategy, name: "Strategy", marker: {color: "#1f5fa8"}, hovertemplate: "%{y:.2%}"}];
  if (d.benchmark) traces.push({type: "bar", x: d.dates, y: d.benchmark, name: "Buy & hold", marker: {color: "#8c8c8c"}, hovertemplate: "%{y:.2%}"});
  Plotly.newPlot("daily-chart", traces, {barmode: "group", margin: {l: 70, r: 20, t: 10, b: 60}, hovermode: "x unified",
    xaxis: {type: "category", title: {text: "Session (New York date)"}}, yaxis: {title: {text: "Return of the session"}, tickformat: ".2%"},
    legend: {orientation: "h", y: 1.08}}, CONFIG);
}
const KINDS = {entry: ["triangle-up", "#2a9d3a", 11, "Entry (buy from flat)"], add: ["triangle-up", "#2a9d3a", 6, "Add (buy)"],
  trim: ["triangle-down", "#d0342c", 6, "Trim (sell)"], exit: ["triangle-down", "#d0342c", 11, "Exit (sell to flat)"]};
function exitLine(s) {
  // level - buffer % of the reference in force at each level point (refs are few steps)
  let j = 0;
  return s.level.t.map((t, i) => {
    while (j + 1 < s.ref.t.length && s.ref.t[j + 1] <= t) j++;
    const level = s.level.y[i], ref = s.ref.y[j];
    return level === null || ref === null ? null : level - (ref * s.buffer) / 100;
  });
}
function symbolChart(symbol) {
  const s = D.symbols[symbol];
  if (!s) return;
  const traces = [];
  if (s.close) traces.push({x: ms(s.close.t), y: s.close.y, name: "Close", mode: "lines", line: {color: "#263238", width: 1}, hovertemplate: "%{y}"});
  if (s.level) traces.push({x: ms(s.level.t), y: s.level.y, name: "Band level", mode: "lines", line: {color: "#e07b00", width: 1.3, shape: "hv"}, hovertemplate: "%{y}"});
  if (s.level && s.ref) traces.push({x: ms(s.level.t), y: exitLine(s), name: "Exit line (level - buffer)", mode: "lines",
    line: {color: "#e07b00", width: 1, dash: "dot", shape: "hv"}, hovertemplate: "%{y:.4~f}", visible: "legendonly"});
  for (const kind of Object.keys(KINDS)) {
    const [marker, colour, size, label] = KINDS[kind];
    const idx = [];
    s.fills.k.forEach((k, i) => { if (k === kind) idx.push(i); });
    if (!idx.length) continue;
    traces.push({x: idx.map((i) => s.fills.t[i] * MIN), y: idx.map((i) => s.fills.p[i]), mode: "markers", name: label + " (" + idx.length + ")",
      marker: {symbol: marker, color: colour, size: size, mode: "lines", line: {color: "white", width: 0.5}},
      text: idx.map((i) => (s.fills.q[i] > 0 ? "BUY " : "SELL ") + Math.abs(s.fills.q[i]) + " @ " + s.fills.p[i] + ", then " + s.fills.after[i] + " shares"),
      hovertemplate: "%{text}<extra></extra>"});
  }
  traces.push({x: ms(s.position.t), y: s.position.y, name: "Shares held", yaxis: "y2", mode: "lines", line: {color: "#1f5fa8", width: 1, shape: "hv"},
    fill: "tozeroy", fillcolor: "rgba(31,95,168,0.3)", hovertemplate: "%{y} shares"});
  const info = [symbol + ": " + s.fills.t.length + " fills"];
  if (s.realised !== null && s.realised !== undefined) info.push("realised P&L $" + s.realised.toLocaleString("en-US", {maximumFractionDigits: 2}));
  if (s.missing) info.push("no bar in " + s.missing.toLocaleString("en-US") + " minutes of the run");
  if (s.note) info.push(s.note);
  document.getElementById("symbol-info").textContent = info.join("; ");
  Plotly.react("symbol-chart", traces, {margin: {l: 70, r: 20, t: 10, b: 40}, hovermode: "closest", legend: {orientation: "h", y: 1.07},
    xaxis: timeAxis({anchor: "y2"}), yaxis: {domain: [0.3, 1], title: {text: "Price (USD)"}},
    yaxis2: {domain: [0, 0.24], title: {text: "Shares held"}, rangemode: "tozero"}}, CONFIG);
}
function setup() {
  equityChart();
  allocationChart();
  pnlChart();
  dailyChart();
  const select = document.getElementById("symbol-select");
  if (select) {
    select.addEventListener("change", () => symbolChart(select.value));
    symbolChart(select.value);
    document.querySelectorAll("a.pick").forEach((a) => a.addEventListener("click", () => {
      if (D.symbols[a.dataset.symbol]) { select.value = a.dataset.symbol; symbolChart(a.dataset.symbol); }
    }));
  }
  document.body.dataset.ready = "1";
}
setup();
"""

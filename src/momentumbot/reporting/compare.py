"""Several run folders side by side: their figures, config differences and equity curves."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from momentumbot.domain.errors import DataError
from momentumbot.reporting import plots
from momentumbot.reporting.console import figure_label, format_figure
from momentumbot.reporting.downsample import minmax_indices
from momentumbot.reporting.html import esc, json_numbers, page, range_breaks
from momentumbot.reporting.metrics import FIGURE_NAMES
from momentumbot.reporting.run_data import MinuteAxis, RunData, load_run

COMPARE_FILE = "compare.html"
_MAX_POINTS = 2400


def _names(runs: Sequence[RunData]) -> list[str]:
    """Column names: the folder names, made unique with their parents when they clash."""
    names = [r.run_dir.name for r in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{r.run_dir.parent.name}/{r.run_dir.name}" for r in runs]


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_differences(runs: Sequence[RunData]) -> dict[str, list[str]]:
    """Config keys whose values differ between the runs -> each run's value as text."""
    flat: list[dict[str, Any]] = []
    for run in runs:
        try:
            flat.append(_flatten(tomllib.loads(run.config_text)) if run.config_text else {})
        except tomllib.TOMLDecodeError:
            flat.append({})
    keys = sorted(set().union(*flat)) if flat else []
    out: dict[str, list[str]] = {}
    for key in keys:
        values = [repr(f[key]) if key in f else "(not set)" for f in flat]
        if len(set(values)) > 1:
            out[key] = [v.strip("'") for v in values]
    return out


def compare_table(runs: Sequence[RunData]) -> Table:
    """The figures of each run side by side, for the console."""
    table = Table(title="Runs compared", title_justify="left")
    table.add_column("Figure", style="bold")
    for name in _names(runs):
        table.add_column(name, justify="right")
    for figure in FIGURE_NAMES:
        table.add_row(
            figure_label(figure), *[format_figure(figure, r.figures.get(figure)) for r in runs]
        )
    table.add_row(
        "Buy & hold total return",
        *[
            format_figure("total_return", (r.benchmark_figures or {}).get("total_return"))
            for r in runs
        ],
    )
    return table


def default_out_dir(run_dirs: Sequence[Path]) -> Path:
    """compare-<A>-vs-<B>... beside the first run folder."""
    names = "-vs-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p.resolve().name) for p in run_dirs)
    return run_dirs[0].resolve().parent / f"compare-{names[:120]}"


def _equity_payload(runs: Sequence[RunData], names: Sequence[str]) -> dict[str, Any]:
    union = np.unique(np.concatenate([r.axis.label_ns for r in runs]))
    axis = MinuteAxis.from_closes(
        pd.DatetimeIndex(union.astype("datetime64[ns]")).tz_localize("UTC")
        + pd.Timedelta(minutes=1)
    )
    curves = []
    for run, name in zip(runs, names, strict=True):
        ret = run.equity["equity"].to_numpy(dtype=float) / run.start_equity - 1.0
        idx = minmax_indices(ret, _MAX_POINTS)
        t = run.axis.wall_minutes(idx) + 1
        curve: dict[str, Any] = {"name": name, "t": t.tolist(), "y": json_numbers(ret[idx], 6)}
        if run.benchmark is not None and len(run.benchmark) == ret.size:
            bench = run.benchmark["equity"].to_numpy(dtype=float) / run.start_equity - 1.0
            bidx = minmax_indices(bench, _MAX_POINTS)
            curve["benchmark"] = {
                "t": (run.axis.wall_minutes(bidx) + 1).tolist(),
                "y": json_numbers(bench[bidx], 6),
            }
        curves.append(curve)
    return {"breaks": range_breaks(axis), "curves": curves}


def render_compare(runs: Sequence[RunData]) -> str:
    names = _names(runs)
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = "".join(
        f'<tr data-figure="{esc(f)}"><th scope="row">{esc(figure_label(f))}</th>'
        + "".join(f"<td>{esc(format_figure(f, r.figures.get(f)))}</td>" for r in runs)
        + "</tr>"
        for f in FIGURE_NAMES
    )
    rows += (
        "<tr><th scope='row'>Buy &amp; hold total return</th>"
        + "".join(
            f"<td>{esc(format_figure('total_return', (r.benchmark_figures or {}).get('total_return')))}</td>"
            for r in runs
        )
        + "</tr>"
    )
    diffs = config_differences(runs)
    if diffs:
        diff_rows = "".join(
            f"<tr><th scope='row'>{esc(k)}</th>"
            + "".join(f"<td>{esc(v)}</td>" for v in vals)
            + "</tr>"
            for k, vals in diffs.items()
        )
        diff_html = (
            f'<table class="figures"><thead><tr><th>Config key</th>{head}</tr></thead>'
            f"<tbody>{diff_rows}</tbody></table>"
        )
    else:
        diff_html = '<p class="empty">The runs have the same config.</p>'
    folders = "".join(
        f"<li><b>{esc(n)}</b>: {esc(r.run_dir.resolve())} ({len(r.symbols)} symbols, "
        f"{r.axis.n_sessions} sessions)</li>"
        for n, r in zip(names, runs, strict=True)
    )
    body = f"""
<header><h1>momentumbot: {len(runs)} runs compared</h1><p class="sub">Figures side by side,
config differences and equity curves (return on each run's start equity, New York time).</p></header>
<main>
<section id="runs"><h2>Runs</h2><ul>{folders}</ul></section>
<section id="figures"><h2>Figures</h2><table class="figures"><thead><tr><th>Figure</th>{head}</tr></thead>
<tbody>{rows}</tbody></table></section>
<section id="config-diff"><h2>Config differences</h2>{diff_html}</section>
<section id="equity"><h2>Equity curves</h2><p class="hint">Dashed: buy &amp; hold of each run's
symbols. Drag to zoom, double-click to reset.</p><div id="compare-chart" class="chart tall"></div></section>
</main>"""
    return page(
        f"momentumbot: {len(runs)} runs compared", body, _equity_payload(runs, names), COMPARE_JS
    )


def write_compare(run_dirs: Sequence[Path], out_dir: Path | None = None) -> tuple[Path, Table]:
    """Write compare.html and plots/equity_compare.png; returns the page and the table."""
    if len(run_dirs) < 2:
        raise DataError("compare needs at least two run folders")
    runs = [load_run(Path(p)) for p in run_dirs]
    out = out_dir if out_dir is not None else default_out_dir(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    plots.compare_png(runs, out / "plots" / "equity_compare.png", _names(runs))
    path = out / COMPARE_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_compare(runs), encoding="utf-8")
    tmp.replace(path)
    return path, compare_table(runs)


COMPARE_JS = r"""
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79"];
const traces = [];
D.curves.forEach((c, i) => {
  const colour = PALETTE[i % PALETTE.length];
  traces.push({x: ms(c.t), y: c.y, name: c.name, mode: "lines", line: {color: colour, width: 1.5}, hovertemplate: "%{y:.2%}"});
  if (c.benchmark) traces.push({x: ms(c.benchmark.t), y: c.benchmark.y, name: "buy & hold, " + c.name,
    mode: "lines", line: {color: colour, width: 1, dash: "dash"}, opacity: 0.7, hovertemplate: "%{y:.2%}"});
});
Plotly.newPlot("compare-chart", traces, {margin: {l: 70, r: 20, t: 10, b: 40}, hovermode: "x unified",
  legend: {orientation: "h", y: 1.06}, xaxis: timeAxis(), yaxis: {title: {text: "Return on start equity"}, tickformat: ".1%"}}, CONFIG);
document.body.dataset.ready = "1";
"""

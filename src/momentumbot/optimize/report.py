"""The sweep's outputs: best.toml, the best run's folder, overfitting.json, heatmaps of the
objective over every pair of swept parameters, the walk-forward files, and summary.html
(one self-contained page, built with the run report's page, styles and sortable tables)."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from momentumbot.app.backtest import backtest_to_folder
from momentumbot.config.loader import load_config
from momentumbot.config.schema import AppConfig
from momentumbot.data.store import BarStore
from momentumbot.optimize.overfit import Overfitting, overfitting
from momentumbot.optimize.plan import SweepOutcome, SweepPlan, best_config_text
from momentumbot.optimize.results import daily_matrix
from momentumbot.optimize.space import ParamSet, apply_params, params_key
from momentumbot.optimize.walkforward import (
    best_row,
    objective_value,
    read_equity,
    stitch_equity,
    stitched_fills,
)
from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.console import figure_label, format_figure
from momentumbot.reporting.html import esc, json_numbers, page
from momentumbot.reporting.metrics import FIGURE_NAMES, compute_figures, to_jsonable

MAX_TABLE_ROWS = 500
SIDE_BY_SIDE = ("total_return", "annual_return", "sharpe", "sortino", "calmar", "max_drawdown",
                "round_trips", "win_rate")  # fmt: skip


def _params(row: pd.Series, plan: SweepPlan) -> ParamSet:
    key = str(row["params_key"])
    for p in plan.param_sets:
        if params_key(p) == key:
            return p
    raise ValueError(f"parameter set {key} is not in this sweep")


def _ordered(rows: pd.DataFrame, plan: SweepPlan) -> pd.DataFrame:
    rank = {k: i for i, k in enumerate(plan.order)}
    pos = rows["params_key"].map(lambda k: rank.get(k, len(rank)))
    return rows.assign(_pos=pos).sort_values("_pos", kind="stable").drop(columns="_pos")


def _overfit(rows: pd.DataFrame, plan: SweepPlan) -> Overfitting:
    return overfitting(daily_matrix(_ordered(rows, plan)))


def write_outputs(plan: SweepPlan, outcome: SweepOutcome, base: AppConfig) -> None:
    """Everything after the runs: choose, write, draw, summarise."""
    spec = plan.spec
    out = spec.out
    results = outcome.results.copy()
    if results.empty:
        return
    results["params_key"] = results["key"].map(lambda k: str(k).split("|", 3)[3])
    results = results[results["params_key"].isin(set(plan.order))]
    names = [s.name for s in spec.specs]
    info: dict[str, Any] = {
        "objective": spec.objective,
        "method": spec.method,
        "span": {"start": plan.span.start, "end": plan.span.end},
        "symbols": spec.symbols,
        "parameters": {s.name: list(s.values) or [s.low, s.high] for s in spec.specs},
        "parameter_sets": len(plan.param_sets),
        "runner": outcome.runner,
        "ran": outcome.ran,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
        "seconds": round(outcome.seconds, 3),
    }
    if plan.windows:
        live = plan.windows[-1]
        chosen_rows = results[(results["phase"] == "train") & (results["window"] == live.index)]
        chosen_rows = chosen_rows[chosen_rows["start"] == live.train.start]
        span_note = f"chosen on the latest {spec.walk_forward[0] if spec.walk_forward else ''} sessions, {live.train.start} to {live.train.end}"
        start, end = live.train.start, live.train.end
    else:
        chosen_rows = results[results["phase"] == "sweep"]
        span_note = f"best of the sweep over {plan.span.start} to {plan.span.end}"
        start, end = plan.span.start, plan.span.end
    if chosen_rows.empty:
        return
    best = best_row(chosen_rows, spec.objective, plan.order)
    outcome.best = best
    best_params = _params(best, plan)
    best_cfg = apply_params(base.model_dump(), spec.specs, best_params)
    stats = _overfit(chosen_rows, plan)
    note = [
        f"{span_note}, by {spec.objective} = {best[spec.objective]}",
        "parameters: " + ", ".join(f"{n} = {v!r}" for n, v in best_params),
        f"overfitting: {stats.verdict()}",
        f"re-run: momentumbot backtest --config best.toml --start {start} --end {end}",
    ]
    best_toml = out / "best.toml"
    best_toml.write_text(best_config_text(best_cfg, spec.store, note), encoding="utf-8")
    load_config(best_toml)  # what we wrote must load
    outcome.best_config = best_toml
    info["best"] = {
        "parameters": dict(best_params),
        "objective": objective_value(best[spec.objective]),
        "start": start,
        "end": end,
        "figures": {n: _plain(best[n]) for n in FIGURE_NAMES},
    }
    info["overfitting"] = stats.as_dict()
    rf.write_json(to_jsonable(stats.as_dict()), out / "overfitting.json")
    links: list[tuple[str, str]] = [("results.csv", "every run: parameters, figures, run time"),
                                    ("best.toml", "the best parameters as a config")]  # fmt: skip
    if (out / "failures.csv").is_file():
        links.append(("failures.csv", "runs that failed (a rerun retries them)"))
    best_run = out / "best"
    if spec.report and not plan.windows:
        backtest_to_folder(best_cfg, BarStore(spec.store), best_run, start=start, end=end,
                           store_path=spec.store)  # fmt: skip
        from momentumbot.reporting.report import write_report

        write_report(best_run, symbol_plots=False)
        links.append(("best/report.html", "the best run's report"))
    heat = _heatmaps(chosen_rows, names, spec.objective, out / "heatmaps")
    links += [(p.relative_to(out).as_posix(), "heatmap (PNG)") for p in heat["files"]]
    wf: dict[str, Any] | None = None
    if plan.windows:
        wf = _walk_forward(plan, results, base)
        if wf is not None:
            links += [("walk_forward/windows.csv", "walk-forward: in- and out-of-sample by window"),
                      ("walk_forward/oos_equity.csv", "walk-forward: stitched out-of-sample equity"),
                      ("walk_forward/summary.json", "walk-forward: figures side by side")]  # fmt: skip
            info["walk_forward"] = {k: v for k, v in wf.items() if k not in ("equity", "table")}
    rf.write_json(to_jsonable(info), out / "summary.json")
    html = render_summary(plan, results, chosen_rows, info, stats, heat, wf, links)
    path = out / "summary.html"
    path.write_text(html, encoding="utf-8")
    outcome.summary_html = path
    outcome.extras = info


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------ heatmaps


def _heatmaps(rows: pd.DataFrame, names: list[str], objective: str, folder: Path) -> dict[str, Any]:
    """The objective over every pair of swept parameters (best over the others), as PNGs
    and as data for the page; a single parameter gets a line."""
    swept = [n for n in names if rows[n].nunique() > 1]
    values = rows[objective].map(objective_value).replace(-math.inf, np.nan)
    frame = rows[swept].assign(_obj=values)
    out: dict[str, Any] = {"files": [], "pairs": [], "lines": []}
    for a, b in combinations(swept, 2):
        table = frame.pivot_table(index=b, columns=a, values="_obj", aggfunc="max")
        path = folder / f"{a}__{b}.png"
        _heatmap_png(table, a, b, objective, path)
        out["files"].append(path)
        out["pairs"].append({
            "x": a, "y": b, "xs": [float(x) for x in table.columns],
            "ys": [float(y) for y in table.index],
            "z": [json_numbers(r, 6) for r in table.to_numpy()],
        })  # fmt: skip
    if len(swept) == 1:
        a = swept[0]
        line = frame.groupby(a)["_obj"].max()
        out["lines"].append({"x": a, "xs": [float(x) for x in line.index],
                             "y": json_numbers(line.to_numpy(), 6)})  # fmt: skip
    return out


def _heatmap_png(table: pd.DataFrame, a: str, b: str, objective: str, path: Path) -> None:
    fig = Figure(figsize=(7.5, 5.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    z = table.to_numpy(dtype=float)
    im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [f"{x:g}" for x in table.columns], rotation=45)
    ax.set_yticks(range(len(table.index)), [f"{y:g}" for y in table.index])
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.set_title(f"{objective} (best over the other parameters)", fontsize=11)
    fig.colorbar(im, ax=ax, label=objective)
    if z.size <= 400:
        finite = z[np.isfinite(z)]
        mid = float(np.nanmean(finite)) if finite.size else 0.0
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < mid else "black")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


# ------------------------------------------------------------------- walk-forward


def _walk_forward(plan: SweepPlan, results: pd.DataFrame, base: AppConfig) -> dict[str, Any] | None:
    spec = plan.spec
    folder = spec.out / "walk_forward"
    rows_out: list[dict[str, Any]] = []
    run_dirs: list[Path] = []
    for w in plan.windows:
        if w.test is None:
            continue
        train = results[(results["phase"] == "train") & (results["window"] == w.index)]
        train = train[train["start"] == w.train.start]
        test = results[(results["phase"] == "test") & (results["window"] == w.index)]
        test = test[test["start"] == w.test.start]
        run_dir = folder / f"window-{w.index:03d}"
        if train.empty or test.empty or not (run_dir / "equity.csv").is_file():
            continue
        chosen = best_row(train, spec.objective, plan.order)
        oos = test[test["params_key"] == chosen["params_key"]]
        if oos.empty:
            continue
        o = oos.iloc[0]
        stats = _overfit(train, plan)
        row: dict[str, Any] = {
            "window": w.index,
            "train_start": w.train.start,
            "train_end": w.train.end,
            "test_start": w.test.start,
            "test_end": w.test.end,
            **{f"param_{n}": v for n, v in _params(chosen, plan)},
        }
        for name in SIDE_BY_SIDE:
            row[f"is_{name}"] = _plain(chosen[name])
            row[f"oos_{name}"] = _plain(o[name])
        row["pbo"] = stats.pbo
        row["dsr"] = stats.dsr
        rows_out.append(row)
        run_dirs.append(run_dir)
    if not rows_out:
        return None
    windows = pd.DataFrame(rows_out)
    rf.write_csv(windows, folder / "windows.csv")
    start_equity = float(base.portfolio.initial_cash)
    stitched = stitch_equity([read_equity(d) for d in run_dirs], start_equity)
    rf.write_csv(stitched, folder / "oos_equity.csv")
    oos_figures = compute_figures(stitched, stitched_fills(run_dirs), start_equity=start_equity)
    is_mean = {n: _mean(windows[f"is_{n}"]) for n in SIDE_BY_SIDE}
    oos_mean = {n: _mean(windows[f"oos_{n}"]) for n in SIDE_BY_SIDE}
    efficiency = None
    if is_mean["annual_return"] and oos_mean["annual_return"] is not None:
        efficiency = oos_mean["annual_return"] / is_mean["annual_return"]
    summary = {
        "train_sessions": spec.walk_forward[0] if spec.walk_forward else None,
        "test_sessions": spec.walk_forward[1] if spec.walk_forward else None,
        "windows": len(windows),
        "out_of_sample": oos_figures,
        "in_sample_mean": is_mean,
        "out_of_sample_mean": oos_mean,
        "walk_forward_efficiency": efficiency,
        "distinct_choices": int(windows.filter(like="param_").drop_duplicates().shape[0]),
    }
    rf.write_json(to_jsonable(summary), folder / "summary.json")
    return {**summary, "table": windows, "equity": stitched}


def _mean(series: pd.Series) -> float | None:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


# ---------------------------------------------------------------------------- page


def _table(frame: pd.DataFrame, columns: list[tuple[str, str]]) -> str:
    head = "".join(
        f'<th data-type="{"num" if kind != "text" else "text"}" title="click to sort">{esc(label)}</th>'
        for label, kind in columns
    )
    body = []
    for _, r in frame.iterrows():
        cells = []
        for col, kind in columns:
            value = r.get(col)
            if kind == "text":
                cells.append(f'<td class="l">{esc("" if value is None else value)}</td>')
            else:
                number = objective_value(value)
                figure = col.removeprefix("is_").removeprefix("oos_")
                shown = format_figure(figure, _plain(value)) if figure in FIGURE_NAMES else (
                    "" if number == -math.inf else f"{number:g}")  # fmt: skip
                sort = "" if number == -math.inf else repr(number)
                cells.append(f'<td data-v="{esc(sort)}">{esc(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table>")  # fmt: skip


PAGE_JS = r"""
function heatmaps() {
  (D.pairs || []).forEach((p, i) => {
    Plotly.newPlot("heat-" + i, [{type: "heatmap", x: p.xs.map(String), y: p.ys.map(String), z: p.z,
      colorscale: "Viridis", colorbar: {title: {text: D.objective}},
      hovertemplate: p.x + " %{x}<br>" + p.y + " %{y}<br>" + D.objective + " %{z}<extra></extra>"}],
      {margin: {l: 70, r: 20, t: 10, b: 60}, xaxis: {title: {text: p.x}, type: "category"},
       yaxis: {title: {text: p.y}, type: "category"}}, CONFIG);
  });
  (D.lines || []).forEach((p, i) => {
    Plotly.newPlot("line-" + i, [{x: p.xs, y: p.y, mode: "lines+markers", name: D.objective}],
      {margin: {l: 70, r: 20, t: 10, b: 50}, xaxis: {title: {text: p.x}}, yaxis: {title: {text: D.objective}}}, CONFIG);
  });
}
function oosChart() {
  const e = D.oos;
  if (!e) return;
  Plotly.newPlot("oos-chart", [{x: e.t, y: e.y, mode: "lines", name: "Out-of-sample equity (stitched)",
    line: {color: "#1f5fa8", width: 1.4}, hovertemplate: "$%{y:,.2f}"}],
    {margin: {l: 70, r: 20, t: 10, b: 40}, hovermode: "x unified",
     xaxis: {type: "category", nticks: 12, title: {text: "bar close (UTC)"}},
     yaxis: {title: {text: "Equity (USD)"}, tickformat: "$,.0f"},
     shapes: e.bounds.map((t) => ({type: "line", xref: "x", x0: t, x1: t, yref: "paper", y0: 0, y1: 1,
       line: {dash: "dot", width: 1, color: "#999"}}))}, CONFIG);
}
heatmaps();
oosChart();
document.body.dataset.ready = "1";
"""


def render_summary(
    plan: SweepPlan,
    results: pd.DataFrame,
    chosen_rows: pd.DataFrame,
    info: dict[str, Any],
    stats: Overfitting,
    heat: dict[str, Any],
    wf: dict[str, Any] | None,
    links: list[tuple[str, str]],
) -> str:
    spec = plan.spec
    names = [s.name for s in spec.specs]
    best = info["best"]
    verdict_cls = "loss" if stats.overfit else "gain"
    cards = "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
        for k, v in [
            *[(n, f"{v:g}") for n, v in best["parameters"].items()],
            (spec.objective, format_figure(spec.objective, best["figures"].get(spec.objective))),
            *(
                [
                    (
                        "total_return",
                        format_figure("total_return", best["figures"].get("total_return")),
                    )
                ]
                if spec.objective != "total_return"
                else []
            ),
            ("PBO", "n/a" if stats.pbo is None else f"{stats.pbo:.2f}"),
            ("deflated Sharpe", "n/a" if stats.dsr is None else f"{stats.dsr:.2f}"),
        ]
    )
    link_list = "".join(f'<li><a href="{esc(h)}">{esc(h)}</a>: {esc(t)}</li>' for h, t in links)
    figures = "".join(
        f"<tr><th>{esc(figure_label(n))}</th><td>{esc(format_figure(n, best['figures'].get(n)))}</td></tr>"
        for n in FIGURE_NAMES
    )
    ranked = chosen_rows.assign(_o=chosen_rows[spec.objective].map(objective_value))
    ranked = ranked.sort_values("_o", ascending=False, kind="stable").head(MAX_TABLE_ROWS)
    cols = [(n, "num") for n in names] + [(n, "num") for n in (
        "sharpe", "sortino", "calmar", "total_return", "max_drawdown", "round_trips", "win_rate",
        "turnover", "run_seconds")]  # fmt: skip
    table = _table(ranked, cols)
    more = (
        f'<p class="hint">The {MAX_TABLE_ROWS} best of {len(chosen_rows)} runs; all are in results.csv.</p>'
        if len(chosen_rows) > MAX_TABLE_ROWS else ""
    )  # fmt: skip
    heat_divs = "".join(
        f'<h3>{esc(p["x"])} x {esc(p["y"])}</h3><div id="heat-{i}" class="chart"></div>'
        for i, p in enumerate(heat["pairs"])
    ) + "".join(
        f'<h3>{esc(p["x"])}</h3><div id="line-{i}" class="chart"></div>'
        for i, p in enumerate(heat["lines"])
    )
    data: dict[str, Any] = {
        "objective": spec.objective,
        "pairs": heat["pairs"],
        "lines": heat["lines"],
    }
    wf_section = ""
    if wf is not None:
        eq = wf["equity"]
        step = max(1, len(eq) // 3000)
        bounds = [str(t) for t in eq["time"].iloc[[0]]]
        data["oos"] = {"t": [str(t) for t in eq["time"].iloc[::step]],
                       "y": json_numbers(eq["equity"].to_numpy(float)[::step], 2),
                       "bounds": bounds}  # fmt: skip
        windows: pd.DataFrame = wf["table"]
        wcols: list[tuple[str, str]] = [("window", "num"), ("train_start", "text"),
                                        ("train_end", "text"), ("test_start", "text"),
                                        ("test_end", "text")]  # fmt: skip
        wcols += [(c, "num") for c in windows.columns if c.startswith("param_")]
        for n in ("sharpe", "total_return", "max_drawdown"):
            wcols += [(f"is_{n}", "num"), (f"oos_{n}", "num")]
        wcols += [("pbo", "num"), ("dsr", "num")]
        side = "".join(
            f"<tr><th>{esc(figure_label(n))}</th><td>{esc(format_figure(n, wf['in_sample_mean'].get(n)))}</td>"
            f"<td>{esc(format_figure(n, wf['out_of_sample_mean'].get(n)))}</td>"
            f"<td>{esc(format_figure(n, wf['out_of_sample'].get(n)))}</td></tr>"
            for n in SIDE_BY_SIDE
        )
        eff = wf["walk_forward_efficiency"]
        wf_section = f"""
<section id="walk-forward"><h2>Walk-forward</h2>
<p class="hint">Windows of {esc(wf["train_sessions"])} training sessions choose the parameters by {esc(spec.objective)};
the next {esc(wf["test_sessions"])} sessions test them. {esc(wf["windows"])} windows, {esc(wf["distinct_choices"])} distinct choices.
Walk-forward efficiency (mean out-of-sample / mean in-sample annual return): {esc("n/a" if eff is None else f"{eff:.2f}")}.</p>
<table class="figures"><thead><tr><th>Figure</th><th>In sample (mean of windows)</th><th>Out of sample (mean of windows)</th>
<th>Out of sample (stitched)</th></tr></thead><tbody>{side}</tbody></table>
<h3>Out-of-sample equity, stitched from the test windows</h3><div id="oos-chart" class="chart"></div>
<h3>Windows</h3><div class="scroll">{_table(windows, wcols)}</div></section>"""
    what = (
        f"walk-forward {spec.walk_forward[0]},{spec.walk_forward[1]}"
        if spec.walk_forward else f"{spec.method} sweep"
    )  # fmt: skip
    subtitle = (
        f"{what} of {len(plan.param_sets)} parameter sets over {len(spec.symbols)} symbols, "
        f"{plan.span.start} to {plan.span.end}; objective {spec.objective}; "
        f"{info['ran']} runs now, {info['skipped']} from before, {info['failed']} failed, {info['runner']}"
    )
    body = f"""
<header><h1>{esc(spec.out.name)}: momentumbot optimize</h1><p class="sub">{esc(subtitle)}</p></header>
<nav><a href="#best">Best</a><a href="#heatmaps">Heatmaps</a><a href="#results">Results</a>{'<a href="#walk-forward">Walk-forward</a>' if wf else ""}<a href="#files">Files</a></nav>
<main>
<section id="best"><h2>Best parameters</h2><p class="hint">Chosen on {esc(best["start"])} to {esc(best["end"])}.
Re-run: <code>momentumbot backtest --config best.toml --start {esc(best["start"])} --end {esc(best["end"])}</code></p>
<div class="cards">{cards}</div>
<p class="{verdict_cls}"><b>Overfitting:</b> {esc(stats.verdict())}. PBO by combinatorially symmetric cross-validation
over {esc(stats.pbo_combinations)} splits of {esc(stats.sessions)} sessions into {esc(stats.pbo_splits)} blocks;
deflated Sharpe ratio for {esc(stats.trials)} trials.</p>
<table class="figures"><tbody>{figures}</tbody></table></section>
<section id="heatmaps"><h2>Objective over the parameters</h2><p class="hint">Each cell: the best {esc(spec.objective)} over the other parameters.</p>{heat_divs or '<p class="empty">One parameter value only: nothing to draw.</p>'}</section>
<section id="results"><h2>Results</h2><p class="hint">Click a column to sort.</p>{more}<div class="scroll">{table}</div></section>
{wf_section}
<section id="files"><h2>Files</h2><ul>{link_list}</ul></section>
</main>"""
    return page(f"{spec.out.name}: momentumbot optimize", body, data, PAGE_JS)


def results_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))

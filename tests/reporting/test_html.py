"""report.html and compare.html: self-contained, with the figures, trades and config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import DataError
from momentumbot.reporting.compare import config_differences, write_compare
from momentumbot.reporting.console import figure_label, format_figure
from momentumbot.reporting.html import range_breaks, trades_table
from momentumbot.reporting.metrics import FIGURE_NAMES
from momentumbot.reporting.report import write_report
from momentumbot.reporting.run_data import MinuteAxis, load_run
from tests.reporting.conftest import Runs


def _text(run_dir: Path, name: str = "report.html") -> str:
    return (run_dir / name).read_text(encoding="utf-8")


def _data(page: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert match, "the page carries its chart data"
    return json.loads(match.group(1))


def _notices(page: str) -> str:
    match = re.search(r'<section class="notices".*?</section>', page, re.S)
    return match.group(0) if match else ""


def test_report_is_one_self_contained_file(reports: Runs) -> None:
    page = _text(reports.full)
    assert page.startswith("<!DOCTYPE html>")
    # nothing is fetched: no external scripts, styles, fonts or images
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link\b", page)
    assert not re.search(r"<img\b", page)
    assert "@import" not in page and "@font-face" not in page
    assert page.count("plotly.js v") == 1, "Plotly is inlined exactly once"
    size = len(page.encode())
    assert 4_000_000 < size < 8_000_000


def test_report_shows_every_figure_beside_the_benchmark(reports: Runs) -> None:
    page = _text(reports.full)
    summary = json.loads((reports.full / "summary.json").read_text(encoding="utf-8"))
    for name in FIGURE_NAMES:
        row = re.search(rf'<tr data-figure="{name}">(.*?)</tr>', page, re.S)
        assert row, name
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        expected = [
            format_figure(name, summary.get(name)),
            format_figure(name, summary["benchmark"].get(name)),
        ]
        assert [c.replace("&amp;", "&") for c in cells] == expected, name
        assert figure_label(name).replace("&", "&amp;") in row.group(1)


def test_report_lists_every_round_trip(reports: Runs) -> None:
    page = _text(reports.full)
    trips = pd.read_csv(reports.full / "round_trips.csv")
    assert len(trips) > 0
    assert page.count('<tr class="trade">') == len(trips)
    assert f"Trades ({len(trips)} round trips)" in page
    first = trips.iloc[0]
    entry = pd.Timestamp(first["entry_time"]).tz_convert("America/New_York")
    assert entry.strftime("%Y-%m-%d %H:%M") in page
    assert 'class="sortable trades"' in page


def test_report_shows_the_config_and_the_charts_data(reports: Runs) -> None:
    page = _text(reports.full)
    config = (reports.full / "config.toml").read_text(encoding="utf-8")
    assert "[strategy]" in config and "[strategy]" in page
    data = _data(page)
    run = load_run(reports.full)
    assert sorted(data["symbols"]) == sorted(run.traded_symbols)
    symbol = run.traded_symbols[0]
    chart = data["symbols"][symbol]
    assert chart["close"]["t"] and chart["level"]["t"] and chart["position"]["t"]
    n_fills = int((run.fills["symbol"] == symbol).sum())
    assert len(chart["fills"]["t"]) == n_fills
    assert set(chart["fills"]["k"]) <= {"entry", "add", "trim", "exit"}
    assert len(data["equity"]["strategy"]["t"]) == run.axis.n_minutes  # short: not thinned
    assert data["equity"]["benchmark"]["y"]
    assert len(data["daily"]["dates"]) == 5
    assert [layer["name"] for layer in data["allocation"]["layers"]][-1] == "Cash"
    assert "Monthly returns" in page  # Jan 29 .. Feb 2 spans two months


def test_missing_bars_are_named(reports: Runs) -> None:
    notices = _notices(_text(reports.full))
    assert "Missing bars" in notices and "SYN003" in notices


def test_no_trades_says_so(reports: Runs) -> None:
    page = _text(reports.no_trades)
    assert "No trades: the strategy never held a position" in _notices(page)
    assert "No round trips" in page
    assert page.count('<tr class="trade">') == 0
    assert _data(page)["symbols"] == {}


def test_one_session_says_so(reports: Runs) -> None:
    page = _text(reports.one_session)
    assert "One session only" in _notices(page)
    assert "Monthly returns" not in page
    assert _data(page)["breaks"] == []


def test_missing_store_says_so_and_still_shows_the_trades(reports: Runs) -> None:
    page = _text(reports.no_store)
    notices = _notices(page)
    assert "Prices are not drawn" in notices and "no-such-store" in notices
    data = _data(page)
    assert data["symbols"]
    assert all("close" not in chart and chart["fills"]["t"] for chart in data["symbols"].values())


def test_a_folder_that_is_not_a_run_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"equity\.csv"):
        write_report(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        write_report(tmp_path / "absent")


def test_a_run_without_summary_or_derived_tables_still_reports(runs: Runs, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("equity.csv", "fills.csv", "benchmark.csv", "config.toml"):
        (bare / name).write_bytes((runs.full / name).read_bytes())
    page = write_report(bare).read_text(encoding="utf-8")
    assert "summary.json is missing" in page
    full = json.loads((runs.full / "summary.json").read_text(encoding="utf-8"))
    row = re.search(r'<tr data-figure="sharpe">(.*?)</tr>', page, re.S)
    assert row and format_figure("sharpe", full["sharpe"]) in row.group(1)


def test_trade_list_is_capped_and_says_so(runs: Runs) -> None:
    trips = load_run(runs.full).trips
    table, shown = trades_table(trips, limit=2)
    assert shown == 2 and table.count('<tr class="trade">') == 2


def test_range_breaks_hide_nights_weekends_and_holidays() -> None:
    cal = TradingCalendar("XNYS")
    grid = cal.grid(cal.sessions("2024-01-12", "2024-01-17"))  # Fri, (weekend, MLK day), Tue, Wed
    closes = pd.DatetimeIndex(grid.label_ns.astype("datetime64[ns]")).tz_localize("UTC")
    axis = MinuteAxis.from_closes(closes + pd.Timedelta(minutes=1))
    breaks = {b["dvalue"]: b["values"] for b in range_breaks(axis)}
    night = (24 * 60) - 390 - 1
    assert sorted(breaks) == [night, night + 3 * 24 * 60]
    # the long break starts Friday 16:01 New York time
    start = pd.Timestamp(breaks[night + 3 * 24 * 60][0] * 60, unit="s")
    assert start == pd.Timestamp("2024-01-12 16:01")


def test_compare_puts_runs_side_by_side(reports: Runs, tmp_path: Path) -> None:
    path, table = write_compare([reports.full, reports.no_trades], tmp_path / "cmp")
    page = path.read_text(encoding="utf-8")
    assert (tmp_path / "cmp" / "plots" / "equity_compare.png").stat().st_size > 10_000
    assert ">full<" in page and ">none<" in page
    assert "strategy.step" in page and "strategy.buffer" in page
    assert len(_data(page)["curves"]) == 2
    assert table.row_count == len(FIGURE_NAMES) + 1
    diffs = config_differences([load_run(reports.full), load_run(reports.no_trades)])
    assert diffs["strategy.step"] == ["1.0", "50.0"]


def test_compare_needs_two_runs(reports: Runs) -> None:
    with pytest.raises(DataError, match="two run folders"):
        write_compare([reports.full])


def test_the_exit_line_the_page_derives_is_the_band_s_exit_line(runs: Runs) -> None:
    """The page draws level - buffer % of the reference; that is the band's exit line."""
    from momentumbot.reporting.html import symbol_payload
    from momentumbot.reporting.report import pass_over_symbols

    run = load_run(runs.full)
    charts: list = []
    pass_over_symbols(run, np.array([0, run.axis.n_minutes]), charts.append)
    chart = charts[0]
    data = symbol_payload(chart, run.axis)
    level, ref, buffer = data["level"], data["ref"], data["buffer"]
    wall = run.axis.wall_minutes()
    j = 0
    for t, y in zip(level["t"], level["y"], strict=True):
        while j + 1 < len(ref["t"]) and ref["t"][j + 1] <= t:
            j += 1
        if y is None:
            continue
        minute = int(np.searchsorted(wall, t))
        assert y - ref["y"][j] * buffer / 100 == pytest.approx(chart.band.lower[minute], abs=2e-3)


def test_secrets_in_the_config_never_reach_the_report(runs: Runs, tmp_path: Path) -> None:
    from momentumbot.reporting.run_data import redact_secrets

    text = 'api_key = "ABC123"\nib_password = \'pw\'\nempty_token = ""\nstep = 1.0\n'
    assert (
        redact_secrets(text)
        == 'api_key = "***"\nib_password = "***"\nempty_token = ""\nstep = 1.0\n'
    )
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    for name in ("equity.csv", "fills.csv", "summary.json", "config.toml"):
        (leaky / name).write_bytes((runs.no_trades / name).read_bytes())
    config = (leaky / "config.toml").read_text(encoding="utf-8")
    (leaky / "config.toml").write_text(
        config + '\n[broker]\napi_token = "SECRET-42"\n', encoding="utf-8"
    )
    page = write_report(leaky).read_text(encoding="utf-8")
    assert "SECRET-42" not in page and "api_token = &quot;***&quot;" in page

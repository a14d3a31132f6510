"""The PNG charts: every file is written, sized and drawn from the right numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from momentumbot.data.calendar import TradingCalendar
from momentumbot.reporting import plots
from momentumbot.reporting.downsample import (
    bucket_bounds,
    bucket_means,
    minmax_indices,
    step_changes,
)
from momentumbot.reporting.metrics import monthly_returns
from momentumbot.reporting.report import pass_over_symbols, write_plots
from momentumbot.reporting.run_data import MinuteAxis, load_run
from momentumbot.reporting.symbols import band_path, position_path, symbol_fills
from momentumbot.strategy.band import band_update
from tests.reporting.conftest import Runs

GENERAL = ("equity.png", "allocation.png", "pnl_by_symbol.png", "returns_by_day.png")


def _axis(first: str, last: str) -> MinuteAxis:
    cal = TradingCalendar("XNYS")
    grid = cal.grid(cal.sessions(first, last))
    closes = pd.DatetimeIndex(grid.label_ns.astype("datetime64[ns]")).tz_localize("UTC")
    return MinuteAxis.from_closes(closes + pd.Timedelta(minutes=1))


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


# ---------------------------------------------------------------- files from a backtest


def test_every_plot_is_written_with_a_sensible_size(reports: Runs) -> None:
    plot_dir = reports.full / "plots"
    for name in GENERAL:
        path = plot_dir / name
        assert path.is_file(), name
        assert 15_000 < path.stat().st_size < 2_000_000, name
        width, height = _png_size(path)
        assert width == 1200 and 300 <= height <= 1500, (name, width, height)
    run = load_run(reports.full)
    traded = run.traded_symbols
    assert traded, "the small backtest should trade"
    symbol_pngs = sorted(p.stem for p in (plot_dir / "symbols").glob("*.png"))
    assert symbol_pngs == sorted(traded)
    for symbol in traded:
        path = plot_dir / "symbols" / f"{symbol}.png"
        assert 15_000 < path.stat().st_size < 1_000_000
        assert _png_size(path) == (1200, 650)


def test_no_trades_still_draws_every_general_plot_and_no_symbol_plot(reports: Runs) -> None:
    plot_dir = reports.no_trades / "plots"
    for name in GENERAL:
        assert (plot_dir / name).stat().st_size > 5_000
    assert not list((plot_dir / "symbols").glob("*.png"))


def test_one_session_and_missing_store_runs_draw_their_plots(reports: Runs) -> None:
    for run_dir in (reports.one_session, reports.no_store):
        for name in GENERAL:
            assert (run_dir / "plots" / name).is_file(), (run_dir.name, name)
    assert list((reports.no_store / "plots" / "symbols").glob("*.png"))


def test_old_symbol_plots_are_replaced(runs: Runs, tmp_path: Path) -> None:
    stale = runs.no_trades / "plots" / "symbols" / "OLD.png"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"not a plot")
    write_plots(load_run(runs.no_trades))
    assert not stale.exists()


def test_capital_by_symbol_plus_cash_is_equity(runs: Runs) -> None:
    """Positions marked at the last close from the store add up to the engine's equity."""
    run = load_run(runs.full)
    bounds = bucket_bounds(run.axis.n_minutes, plots.MAX_AREA_POINTS)
    sweep = pass_over_symbols(run, bounds, lambda chart: None)
    layers = plots.allocation_layers(run, plots.CapitalBuckets(bounds, sweep.capital))
    stacked = np.sum(list(layers.values()), axis=0)
    equity = bucket_means(run.equity["equity"].to_numpy(dtype=float), bounds)
    np.testing.assert_allclose(stacked, equity, rtol=0, atol=0.01)
    assert list(layers)[-1] == "Cash"


def test_missing_bars_are_counted_per_symbol(runs: Runs) -> None:
    run = load_run(runs.full)
    sweep = pass_over_symbols(run, bucket_bounds(run.axis.n_minutes, 10), lambda chart: None)
    missing, of = sweep.missing["SYN003"]
    assert of == run.axis.n_minutes == 5 * 390
    assert 0 < missing < of


# ------------------------------------------------------------------------- time axis


def test_one_session_is_labelled_by_the_hour_in_new_york_time() -> None:
    ticks = plots.time_ticks(_axis("2024-03-11", "2024-03-11"))  # the Monday after DST
    assert ticks.labels[:3] == ["09:30", "10:00", "11:00"]
    assert ticks.labels[-1] == "15:00"
    assert ticks.positions[:2] == [0.0, 30.0]
    assert "New York time, Mon 2024-03-11" in ticks.title


def test_a_few_weeks_are_labelled_by_session_date() -> None:
    axis = _axis("2024-01-02", "2024-01-31")
    ticks = plots.time_ticks(axis)
    assert ticks.labels[0] == "Jan 02"
    assert len(ticks.labels) <= 11
    assert ticks.positions[0] == 0.0 and ticks.positions[1] == float(axis.session_start[3])
    assert "2024" in ticks.title and "skipped" in ticks.title


def test_a_year_is_labelled_by_month() -> None:
    ticks = plots.time_ticks(_axis("2024-01-02", "2024-12-31"))
    assert ticks.labels[0] == "Jan 2024"
    assert all(label.endswith("2024") for label in ticks.labels)
    assert 6 <= len(ticks.labels) <= 12


def test_half_days_and_holidays_take_no_room() -> None:
    axis = _axis("2024-07-02", "2024-07-05")  # Jul 3 closes at 13:00, Jul 4 is a holiday
    assert axis.n_sessions == 3
    assert axis.n_minutes == 390 + 210 + 390
    assert [f"{d:%m-%d}" for d in axis.session_dates] == ["07-02", "07-03", "07-05"]
    wall = axis.wall_minutes()
    assert plots._clock(int(wall[0])) == "09:30"  # New York time, not UTC
    assert plots._clock(int(wall[390 + 209])) == "12:59"


# ------------------------------------------------------------------------ downsampling


def test_minmax_thinning_keeps_every_extreme_and_the_ends() -> None:
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.normal(size=100_000))
    idx = minmax_indices(values, 2000)
    assert idx.size <= 2002
    assert np.all(np.diff(idx) > 0)
    assert values.argmin() in idx and values.argmax() in idx
    assert idx[0] == 0 and idx[-1] == values.size - 1
    short = np.arange(10.0)
    assert minmax_indices(short, 2000).tolist() == list(range(10))


def test_minmax_thinning_keeps_gaps_visible() -> None:
    values = np.ones(10_000)
    values[4000:6000] = np.nan
    idx = minmax_indices(values, 100)
    assert np.isnan(values[idx]).any()


def test_bucket_means_and_step_changes() -> None:
    bounds = bucket_bounds(10, 3)
    assert bounds.tolist() == [0, 4, 8, 10]
    means = bucket_means(np.arange(10.0), bounds)
    assert means.tolist() == [1.5, 5.5, 8.5]
    steps = np.array([0, 0, 5, 5, 5, 0, 0])
    assert step_changes(steps).tolist() == [0, 2, 5, 6]


# ------------------------------------------------------------------- band and position


def _reference_band(
    opens: np.ndarray, closes: np.ndarray, first: np.ndarray, step: float, buffer: float, hold: bool
) -> np.ndarray:
    """Plain loop over band_update, the way the engine keeps the band."""
    out = np.full(closes.size, np.nan)
    has, ref, level, long = False, 0.0, 0.0, False
    for m in range(closes.size):
        if first[m] and not (hold and m > 0):
            has = False
        if not np.isnan(closes[m]):
            if not has:
                has, ref, level, long = True, opens[m], 0.0, False
            _signal, level, long = band_update(closes[m], ref, level, long, step, buffer)
        if has:
            out[m] = level
    return out


@pytest.mark.parametrize("hold", [False, True])
def test_band_path_replays_band_update_with_session_resets(hold: bool) -> None:
    rng = np.random.default_rng(11)
    n = 3 * 390
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    closes[rng.random(n) < 0.2] = np.nan  # missing bars leave the band as it was
    opens = closes * (1 + rng.normal(0, 0.0005, n))
    first = np.zeros(n, dtype=np.bool_)
    first[[0, 390, 780]] = True
    ref, level = band_path(opens, closes, first, 0.5, 0.2, hold)
    expected = _reference_band(opens, closes, first, 0.5, 0.2, hold)
    np.testing.assert_array_equal(level, expected)
    assert np.nanmax(np.abs(level)) >= 0.5  # the band did climb or fall a rung
    first_bar_of_day_two = 390 + int(np.flatnonzero(~np.isnan(closes[390:]))[0])
    if hold:
        assert ref[first_bar_of_day_two] == ref[0]
    else:
        assert ref[first_bar_of_day_two] == opens[first_bar_of_day_two]


def test_band_path_by_hand() -> None:
    opens = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    closes = np.array([100.2, 100.6, 101.1, np.nan, 100.5])
    first = np.array([True, False, False, False, False])
    _ref, level = band_path(opens, closes, first, 1.0, 0.3, False)
    # +0.2 %: nothing; +0.6 %: nothing; +1.1 %: one rung up; gap: unchanged; +0.5 %: stays
    assert level.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_position_and_fill_kinds_follow_the_fills() -> None:
    axis = _axis("2024-01-02", "2024-01-02")
    start = pd.Timestamp("2024-01-02 14:30", tz="UTC")
    fills = pd.DataFrame(
        {
            "fill_id": [0, 1, 2, 3],
            "time": [start + pd.Timedelta(minutes=m) for m in (5, 10, 20, 30)],
            "symbol": ["ABC"] * 4,
            "side": ["BUY", "BUY", "SELL", "SELL"],
            "quantity": [100, 50, 60, 90],
            "price": [10.0, 10.5, 10.4, 10.2],
        }
    )
    f = symbol_fills(fills, "ABC", axis)
    assert f.kind.tolist() == ["entry", "add", "trim", "exit"]
    assert f.index.tolist() == [5, 10, 20, 30]
    position = position_path(f, axis.n_minutes)
    assert position[4] == 0 and position[5] == 100 and position[10] == 150
    assert position[29] == 90 and position[30] == 0 and position[-1] == 0


def test_monthly_returns_by_hand() -> None:
    closes = pd.to_datetime(
        ["2024-01-30 21:00", "2024-01-31 21:00", "2024-02-01 21:00", "2024-03-01 21:00"],
        utc=True,
    )
    equity = pd.DataFrame(
        {"time": closes, "positions_value": 0.0, "equity": [101.0, 102.0, 99.96, 109.956]}
    )
    monthly = monthly_returns(equity, start_equity=100.0)
    assert [str(p) for p in monthly.index] == ["2024-01", "2024-02", "2024-03"]
    np.testing.assert_allclose(monthly.to_numpy(), [0.02, -0.02, 0.10], atol=1e-12)


def test_a_busy_step_series_is_thinned_but_keeps_its_extremes() -> None:
    from momentumbot.reporting.downsample import step_points

    calm = np.repeat([1.0, 2.0, 1.0], 1000)
    assert step_points(calm, 100).tolist() == [0, 1000, 2000, 2999]
    busy = np.round(np.cumsum(np.random.default_rng(5).normal(size=50_000)))
    idx = step_points(busy, 1000)
    assert idx.size <= 1002
    assert busy.argmax() in idx and busy.argmin() in idx

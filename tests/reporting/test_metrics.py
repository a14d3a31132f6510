"""Figures of a run checked against numbers worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from momentumbot.domain.errors import DataError
from momentumbot.reporting.metrics import (
    FIGURE_NAMES,
    compute_figures,
    daily_returns,
    drawdown,
    pnl_by_symbol,
    round_trips,
    session_end_equity,
    to_jsonable,
)

# Three January sessions (EST, 09:30 New York = 14:30 UTC) of three bars each.
# Session closes 110, 99, 108.9 give daily returns +10 %, -10 %, +10 %.
SESSION_DAYS = ("2024-01-02", "2024-01-03", "2024-01-04")
EQUITY = (105.0, 112.0, 110.0, 104.0, 95.2, 99.0, 111.0, 112.0, 108.9)
# positions are held only in the middle bar of each session, at half the equity
HALF_IN_MIDDLE = (0.0, 0.5, 0.0) * 3


def bar_closes(days: tuple[str, ...], bars: int) -> list[pd.Timestamp]:
    return [
        pd.Timestamp(f"{day} 14:30", tz="UTC") + pd.Timedelta(minutes=m + 1)
        for day in days
        for m in range(bars)
    ]


def equity_frame(
    times: list[pd.Timestamp], equity: tuple[float, ...], weights: tuple[float, ...] | None = None
) -> pd.DataFrame:
    values = np.asarray(equity, dtype=float)
    positions = values * np.asarray(weights if weights is not None else [0.0] * len(values))
    return pd.DataFrame(
        {"time": times, "cash": values - positions, "positions_value": positions, "equity": values}
    )


def fills_frame(rows: list[tuple[str, str, str, int, float, float]]) -> pd.DataFrame:
    """rows of (time UTC, symbol, side, quantity, price, commission)."""
    return pd.DataFrame(
        {
            "fill_id": range(1, len(rows) + 1),
            "order_id": range(1, len(rows) + 1),
            "time": pd.to_datetime([r[0] for r in rows], utc=True),
            "symbol": [r[1] for r in rows],
            "side": [r[2] for r in rows],
            "quantity": [r[3] for r in rows],
            "price": [r[4] for r in rows],
            "commission": [r[5] for r in rows],
            "slippage": [0.01 * r[3] for r in rows],
        }
    )


NO_FILLS = fills_frame([])


@pytest.fixture
def three_sessions() -> pd.DataFrame:
    return equity_frame(bar_closes(SESSION_DAYS, 3), EQUITY, HALF_IN_MIDDLE)


# Two symbols interleaved; AAA exits in two parts (100 -> 40 -> 0) and then re-opens.
TRADES = fills_frame(
    [
        ("2024-01-02 14:31", "AAA", "BUY", 100, 10.0, 1.0),
        ("2024-01-02 14:32", "BBB", "BUY", 50, 20.0, 1.0),
        ("2024-01-02 14:35", "AAA", "SELL", 60, 11.0, 1.0),
        ("2024-01-02 14:40", "BBB", "SELL", 50, 19.0, 1.0),
        ("2024-01-02 14:50", "AAA", "SELL", 40, 12.0, 1.0),
        ("2024-01-02 15:00", "AAA", "BUY", 10, 12.0, 1.0),
    ]
)
AAA_TRIP_PNL = 60 * 11 + 40 * 12 - 100 * 10 - 3 * 1.0  # 137
BBB_TRIP_PNL = 50 * 19 - 50 * 20 - 2 * 1.0  # -52


# ------------------------------------------------------------------ sessions, returns


def test_session_end_equity_takes_each_sessions_last_close(three_sessions: pd.DataFrame) -> None:
    closes = session_end_equity(three_sessions)
    assert list(closes.index) == [pd.Timestamp(d) for d in SESSION_DAYS]
    assert closes.tolist() == [110.0, 99.0, 108.9]


def test_session_of_a_row_is_the_new_york_date_of_its_bar_start() -> None:
    # 16:00 New York is 21:00 UTC in winter and 20:00 UTC in summer; both close their day.
    # A bar closing at 00:30 UTC on the 4th started at 19:29 New York on the 3rd.
    times = pd.to_datetime(
        ["2024-01-03 21:00", "2024-01-04 00:30", "2024-07-01 20:00", "2024-07-02 13:31"], utc=True
    )
    frame = equity_frame(list(times), (1.0, 2.0, 3.0, 4.0))
    closes = session_end_equity(frame)
    assert closes.to_dict() == {
        pd.Timestamp("2024-01-03"): 2.0,
        pd.Timestamp("2024-07-01"): 3.0,
        pd.Timestamp("2024-07-02"): 4.0,
    }


def test_equity_times_may_be_an_index_or_iso_strings(three_sessions: pd.DataFrame) -> None:
    expected = session_end_equity(three_sessions)
    as_index = three_sessions.set_index("time")
    as_text = three_sessions.assign(time=three_sessions["time"].map(lambda t: t.isoformat()))
    pd.testing.assert_series_equal(session_end_equity(as_index), expected)
    pd.testing.assert_series_equal(session_end_equity(as_text), expected)


def test_daily_returns_start_from_start_equity(three_sessions: pd.DataFrame) -> None:
    returns = daily_returns(three_sessions, start_equity=100.0)
    assert returns.to_numpy() == pytest.approx([0.10, -0.10, 0.10])


def test_return_figures_match_hand_computation(three_sessions: pd.DataFrame) -> None:
    f = compute_figures(three_sessions, NO_FILLS, start_equity=100.0)
    assert tuple(f) == FIGURE_NAMES
    assert f["start_equity"] == 100.0
    assert f["final_equity"] == 108.9
    assert f["sessions"] == 3
    assert f["total_return"] == pytest.approx(0.089)
    assert f["annual_return"] == pytest.approx(1.089**84 - 1)  # 252 / 3 sessions
    # daily +0.1, -0.1, +0.1: mean 1/30, sample variance (2 * (1/15)^2 + (2/15)^2) / 2 = 1/75
    assert f["annual_volatility"] == pytest.approx(math.sqrt(252 / 75))  # sqrt(3.36)
    assert f["sharpe"] == pytest.approx((1 / 30) / math.sqrt(1 / 75) * math.sqrt(252))
    assert f["sharpe"] == pytest.approx(math.sqrt(21))
    # downside deviation over all 3 days: sqrt((0 + 0.01 + 0) / 3)
    assert f["sortino"] == pytest.approx((1 / 30) * 252 / (math.sqrt(0.01 / 3) * math.sqrt(252)))
    assert f["sortino"] == pytest.approx(math.sqrt(84))


def test_max_drawdown_and_its_dates(three_sessions: pd.DataFrame) -> None:
    f = compute_figures(three_sessions, NO_FILLS, start_equity=100.0)
    # peak 112 at Jan 2 14:32, trough 95.2 at Jan 3 14:32, back to 112 at Jan 4 14:32
    assert f["max_drawdown"] == pytest.approx(95.2 / 112 - 1)  # -0.15
    assert f["max_drawdown"] == pytest.approx(-0.15)
    assert f["max_drawdown_start"] == "2024-01-02T14:32:00+00:00"
    assert f["max_drawdown_trough"] == "2024-01-03T14:32:00+00:00"
    assert f["max_drawdown_end"] == "2024-01-04T14:32:00+00:00"
    assert f["calmar"] == pytest.approx((1.089**84 - 1) / 0.15)


def test_drawdown_from_the_starting_capital_never_recovered() -> None:
    times = bar_closes(("2024-01-02",), 3)
    f = compute_figures(equity_frame(times, (90.0, 80.0, 85.0)), NO_FILLS, start_equity=100.0)
    assert f["max_drawdown"] == pytest.approx(-0.20)
    # the starting capital is the peak, held from the open of the first bar
    assert f["max_drawdown_start"] == "2024-01-02T14:30:00+00:00"
    assert f["max_drawdown_trough"] == "2024-01-02T14:32:00+00:00"
    assert f["max_drawdown_end"] is None


def test_drawdown_series_is_relative_to_the_running_peak(three_sessions: pd.DataFrame) -> None:
    series = drawdown(three_sessions, start_equity=100.0)
    assert series.index.equals(pd.DatetimeIndex(bar_closes(SESSION_DAYS, 3)))
    expected = [
        0,
        0,
        110 / 112 - 1,
        104 / 112 - 1,
        -0.15,
        99 / 112 - 1,
        111 / 112 - 1,
        0,
        108.9 / 112 - 1,
    ]
    assert series.to_numpy() == pytest.approx(expected)


def test_no_drawdown_gives_zero_and_no_dates_or_calmar() -> None:
    times = bar_closes(("2024-01-02", "2024-01-03"), 2)
    f = compute_figures(
        equity_frame(times, (101.0, 102.0, 103.0, 104.0)), NO_FILLS, start_equity=100
    )
    assert f["max_drawdown"] == 0.0
    assert f["max_drawdown_start"] is None
    assert f["max_drawdown_trough"] is None
    assert f["max_drawdown_end"] is None
    assert f["calmar"] is None
    assert f["sortino"] is None  # no down day: zero downside deviation


def test_fewer_than_two_sessions_has_no_volatility_sharpe_or_sortino() -> None:
    times = bar_closes(("2024-01-02",), 3)
    f = compute_figures(equity_frame(times, (99.0, 101.0, 102.0)), NO_FILLS, start_equity=100.0)
    assert f["sessions"] == 1
    assert f["annual_return"] == pytest.approx(1.02**252 - 1)
    assert f["annual_volatility"] is None
    assert f["sharpe"] is None
    assert f["sortino"] is None


def test_identical_daily_returns_give_no_sharpe_rather_than_inf() -> None:
    times = bar_closes(("2024-01-02", "2024-01-03"), 1)
    f = compute_figures(equity_frame(times, (110.0, 121.0)), NO_FILLS, start_equity=100.0)
    assert f["annual_volatility"] == pytest.approx(0.0, abs=1e-9)
    assert f["sharpe"] is None
    assert f["sortino"] is None


def test_empty_run_gives_start_equity_and_no_statistics() -> None:
    empty = equity_frame([], ())
    f = compute_figures(empty, pd.DataFrame(), start_equity=100.0)
    assert f["final_equity"] == 100.0
    assert f["total_return"] == 0.0
    assert f["sessions"] == 0
    assert f["annual_return"] is None
    assert f["max_drawdown"] == 0.0
    assert f["turnover"] is None
    assert f["exposure"] is None
    assert f["round_trips"] == 0


def test_start_equity_must_be_positive(three_sessions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="start_equity"):
        compute_figures(three_sessions, NO_FILLS, start_equity=0.0)


def test_missing_equity_column_is_named(three_sessions: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="positions_value"):
        compute_figures(three_sessions.drop(columns="positions_value"), NO_FILLS, start_equity=100)


# ------------------------------------------------------------------------ round trips


def test_round_trips_partial_exit_interleaved_symbols_and_open_position() -> None:
    trips = round_trips(TRADES)
    assert trips["symbol"].tolist() == ["AAA", "BBB"]
    aaa, bbb = trips.iloc[0], trips.iloc[1]
    assert aaa["entry_time"] == pd.Timestamp("2024-01-02 14:31", tz="UTC")
    assert aaa["exit_time"] == pd.Timestamp("2024-01-02 14:50", tz="UTC")
    assert aaa["quantity_max"] == 100
    assert aaa["pnl"] == pytest.approx(137.0)
    assert aaa["pnl"] == pytest.approx(AAA_TRIP_PNL)
    assert aaa["holding_minutes"] == 19.0
    assert aaa["avg_entry_price"] == pytest.approx(10.0)
    assert aaa["avg_exit_price"] == pytest.approx((60 * 11 + 40 * 12) / 100)
    assert aaa["commissions"] == pytest.approx(3.0)
    assert aaa["fills"] == 3
    assert bbb["pnl"] == pytest.approx(-52.0)
    assert bbb["holding_minutes"] == 8.0
    assert bbb["quantity_max"] == 50


def test_round_trips_follow_fill_order_not_row_order() -> None:
    shuffled = TRADES.iloc[[5, 2, 0, 4, 3, 1]]
    pd.testing.assert_frame_equal(round_trips(shuffled), round_trips(TRADES))


def test_round_trips_of_no_fills_is_an_empty_table_with_the_columns() -> None:
    for empty in (NO_FILLS, pd.DataFrame()):
        trips = round_trips(empty)
        assert len(trips) == 0
        assert {"symbol", "entry_time", "exit_time", "quantity_max", "pnl"} <= set(trips.columns)
        assert "holding_minutes" in trips.columns


def test_trade_figures_match_hand_computation(three_sessions: pd.DataFrame) -> None:
    f = compute_figures(three_sessions, TRADES, start_equity=100.0, overnight_carries=2)
    assert f["round_trips"] == 2
    assert f["win_rate"] == 0.5
    assert f["profit_factor"] == pytest.approx(137 / 52)
    assert f["avg_holding_minutes"] == pytest.approx((19 + 8) / 2)
    traded = 100 * 10 + 50 * 20 + 60 * 11 + 50 * 19 + 40 * 12 + 10 * 12  # 4210
    assert f["traded_value"] == pytest.approx(traded)
    assert f["turnover"] == pytest.approx(traded / (sum(EQUITY) / 9))
    assert f["exposure"] == pytest.approx(1 / 6)  # half invested in 3 of 9 rows
    assert f["commissions"] == pytest.approx(6.0)
    assert f["slippage"] == pytest.approx(0.01 * 310)
    assert f["overnight_carries"] == 2
    assert isinstance(f["overnight_carries"], int)


def test_profit_factor_is_none_without_a_losing_trip(three_sessions: pd.DataFrame) -> None:
    winners = fills_frame(
        [
            ("2024-01-02 14:31", "AAA", "BUY", 10, 10.0, 1.0),
            ("2024-01-02 14:33", "AAA", "SELL", 10, 12.0, 1.0),
        ]
    )
    f = compute_figures(three_sessions, winners, start_equity=100.0)
    assert f["round_trips"] == 1
    assert f["win_rate"] == 1.0
    assert f["profit_factor"] is None


def test_no_trips_gives_none_for_trip_figures(three_sessions: pd.DataFrame) -> None:
    only_open = fills_frame([("2024-01-02 14:31", "AAA", "BUY", 10, 10.0, 1.0)])
    f = compute_figures(three_sessions, only_open, start_equity=100.0)
    assert f["round_trips"] == 0
    assert f["win_rate"] is None
    assert f["profit_factor"] is None
    assert f["avg_holding_minutes"] is None
    assert f["commissions"] == 1.0


def test_a_fill_crossing_zero_is_refused() -> None:
    crossing = fills_frame(
        [
            ("2024-01-02 14:31", "AAA", "BUY", 10, 10.0, 1.0),
            ("2024-01-02 14:33", "AAA", "SELL", 15, 12.0, 1.0),
        ]
    )
    with pytest.raises(DataError, match="AAA"):
        round_trips(crossing)


def test_bad_side_is_refused() -> None:
    bad = fills_frame([("2024-01-02 14:31", "AAA", "SHORT", 10, 10.0, 1.0)])
    with pytest.raises(DataError, match="SHORT"):
        round_trips(bad)


# ---------------------------------------------------------------------- P&L by symbol


def test_pnl_by_symbol_splits_realised_and_unrealised() -> None:
    table = pnl_by_symbol(TRADES, {"AAA": 10, "BBB": 0}, {"AAA": 13.0, "BBB": 19.5})
    rows = table.set_index("symbol")
    assert rows.loc["AAA", "realised_pnl"] == pytest.approx(137.0)
    # open trip: bought 10 at 12 paying 1 commission, marked at 13
    assert rows.loc["AAA", "unrealised_pnl"] == pytest.approx(-120 - 1 + 130)
    assert rows.loc["AAA", "total_pnl"] == pytest.approx(146.0)
    assert rows.loc["AAA", "commissions"] == pytest.approx(4.0)
    assert rows.loc["AAA", "slippage"] == pytest.approx(0.01 * 210)
    assert rows.loc["AAA", "buys"] == 2
    assert rows.loc["AAA", "sells"] == 2
    assert rows.loc["AAA", "round_trips"] == 1
    assert rows.loc["AAA", "traded_value"] == pytest.approx(1000 + 660 + 480 + 120)
    assert rows.loc["BBB", "realised_pnl"] == pytest.approx(-52.0)
    assert rows.loc["BBB", "unrealised_pnl"] == pytest.approx(0.0)
    assert rows.loc["BBB", "total_pnl"] == pytest.approx(-52.0)
    assert list(table.columns) == [
        "symbol",
        "realised_pnl",
        "unrealised_pnl",
        "total_pnl",
        "commissions",
        "slippage",
        "buys",
        "sells",
        "round_trips",
        "traded_value",
    ]


def test_pnl_by_symbol_refuses_positions_the_fills_do_not_explain() -> None:
    with pytest.raises(DataError, match="AAA"):
        pnl_by_symbol(TRADES, {"AAA": 0}, {})
    with pytest.raises(DataError, match="CCC"):
        pnl_by_symbol(TRADES, {"AAA": 10, "CCC": 5}, {"AAA": 13.0, "CCC": 1.0})


def test_pnl_by_symbol_needs_a_price_for_an_open_position() -> None:
    with pytest.raises(DataError, match="last price"):
        pnl_by_symbol(TRADES, {"AAA": 10}, {})


def test_pnl_by_symbol_of_no_fills_is_empty() -> None:
    assert len(pnl_by_symbol(NO_FILLS, {}, {})) == 0


# --------------------------------------------------------------- accounting property


@st.composite
def fills_at_one_price(draw: st.DrawFn) -> tuple[pd.DataFrame, float, dict[str, int]]:
    """Random long-only fill sequences for up to 3 symbols, all at one price."""
    price = draw(st.floats(min_value=0.5, max_value=500.0, allow_nan=False))
    steps = draw(
        st.lists(st.tuples(st.sampled_from("ABC"), st.integers(1, 500), st.booleans()), max_size=40)
    )
    position = {"A": 0, "B": 0, "C": 0}
    rows = []
    for minute, (symbol, quantity, wants_sell) in enumerate(steps):
        if wants_sell and position[symbol] > 0:
            # sell part or all of the position
            sold = min(quantity, position[symbol])
            position[symbol] -= sold
            side = "SELL"
        else:
            sold = quantity
            position[symbol] += quantity
            side = "BUY"
        commission = draw(st.floats(min_value=0.0, max_value=10.0, allow_nan=False))
        time = pd.Timestamp("2024-01-02 14:30", tz="UTC") + pd.Timedelta(minutes=minute)
        rows.append((time.isoformat(), symbol, side, sold, price, commission))
    return fills_frame(rows), price, position


@settings(max_examples=200, deadline=None)
@given(fills_at_one_price())
def test_a_round_trip_at_one_price_loses_exactly_its_commissions(
    case: tuple[pd.DataFrame, float, dict[str, int]],
) -> None:
    fills, price, position = case
    trips = round_trips(fills)
    assert trips["pnl"].to_numpy() == pytest.approx(-trips["commissions"].to_numpy(), abs=1e-6)
    assert (trips["pnl"] <= 1e-6).all()
    table = pnl_by_symbol(fills, position, dict.fromkeys(position, price))
    assert table["total_pnl"].sum() == pytest.approx(-fills["commission"].sum(), abs=1e-6)
    assert int(table["round_trips"].sum()) == len(trips)


# ------------------------------------------------------------------------------ JSON


def test_to_jsonable_makes_figures_json_safe(three_sessions: pd.DataFrame) -> None:
    figures = {
        "a": np.float64(1.5),
        "b": np.int64(3),
        "c": float("nan"),
        "d": float("inf"),
        "e": pd.Timestamp("2024-01-02 14:31", tz="UTC"),
        "f": None,
        "g": np.bool_(True),
        "h": pd.NaT,
        "benchmark": {"x": np.float32(-np.inf), "y": [np.int32(1), np.nan]},
    }
    out = to_jsonable(figures)
    assert out == {
        "a": 1.5,
        "b": 3,
        "c": None,
        "d": None,
        "e": "2024-01-02T14:31:00+00:00",
        "f": None,
        "g": True,
        "h": None,
        "benchmark": {"x": None, "y": [1, None]},
    }
    assert type(out["b"]) is int
    real = to_jsonable(compute_figures(three_sessions, TRADES, start_equity=100.0))
    assert json.loads(json.dumps(real, allow_nan=False)) == real

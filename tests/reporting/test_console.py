"""The console summary table shows every figure with its unit, strategy beside benchmark."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from momentumbot.reporting import console
from momentumbot.reporting.console import format_figure, summary_table
from momentumbot.reporting.metrics import FIGURE_NAMES

STRATEGY: dict[str, Any] = {
    "start_equity": 100_000.0,
    "final_equity": 112_345.678,
    "total_return": 0.12345678,
    "annual_return": 0.5,
    "annual_volatility": 0.2,
    "sharpe": 1.23456,
    "sortino": 2.0,
    "max_drawdown": -0.0525,
    "max_drawdown_start": "2024-01-02T15:00:00+00:00",
    "max_drawdown_trough": "2024-07-03T14:31:00+00:00",
    "max_drawdown_end": None,
    "calmar": 9.5238,
    "round_trips": 1234,
    "win_rate": 0.55,
    "profit_factor": None,
    "avg_holding_minutes": 42.25,
    "turnover": 12.3456,
    "exposure": 0.8,
    "commissions": 1234.5,
    "slippage": 99.999,
    "overnight_carries": 1,
    "sessions": 250,
    "traded_value": 1_234_567.891,
}
BENCHMARK: dict[str, Any] = {
    **dict.fromkeys(FIGURE_NAMES),
    "start_equity": 100_000.0,
    "final_equity": 98_000.0,
    "total_return": -0.02,
    "sharpe": -0.5,
}


def render(table: Table) -> str:
    screen = Console(record=True, width=120, color_system=None)
    screen.print(table)
    return screen.export_text()


def row_of(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if label in line)


def test_rows_follow_the_figure_names() -> None:
    assert tuple(console._ROWS) == FIGURE_NAMES


def test_table_shows_strategy_and_benchmark_with_units() -> None:
    text = render(summary_table(STRATEGY, BENCHMARK))
    assert "Strategy" in text
    assert "Buy & hold" in text
    assert "$100,000.00" in row_of(text, "Start equity")
    final = row_of(text, "Final equity")
    assert "$112,345.68" in final
    assert "$98,000.00" in final
    total = row_of(text, "Total return")
    assert "12.35 %" in total
    assert "-2.00 %" in total
    sharpe = row_of(text, "Sharpe")
    assert "1.23" in sharpe
    assert "-0.50" in sharpe
    assert "-5.25 %" in row_of(text, "Max drawdown")
    assert "55.00 %" in row_of(text, "Win rate")
    assert "80.00 %" in row_of(text, "Exposure")
    assert "1,234" in row_of(text, "Round trips")
    assert "42.2 min" in row_of(text, "holding")
    assert "12.35" in row_of(text, "Turnover")
    assert "$1,234.50" in row_of(text, "Commissions")
    assert "$100.00" in row_of(text, "Slippage")
    assert "$1,234,567.89" in row_of(text, "Traded value")
    assert "n/a" in row_of(text, "Profit factor")


def test_drawdown_dates_are_new_york_time() -> None:
    text = render(summary_table(STRATEGY, BENCHMARK))
    # 15:00 UTC in January is 10:00 EST; 14:31 UTC in July is 10:31 EDT
    assert "2024-01-02 10:00 ET" in row_of(text, "Drawdown peak")
    assert "2024-07-03 10:31 ET" in row_of(text, "Drawdown trough")
    assert "n/a" in row_of(text, "Drawdown recovered")


def test_without_a_benchmark_its_column_says_n_a() -> None:
    text = render(summary_table(STRATEGY, None))
    assert row_of(text, "Final equity").rstrip(" │").endswith("n/a")
    assert row_of(text, "Sessions").count("n/a") == 1


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("total_return", None, "n/a"),
        ("total_return", float("nan"), "n/a"),
        ("sharpe", float("inf"), "n/a"),
        ("commissions", -1234.5, "-$1,234.50"),
        ("commissions", -0.001, "$0.00"),
        ("sessions", 3, "3"),
        ("max_drawdown_start", "not a time", "n/a"),
        ("unknown_figure", 7, "7"),
    ],
)
def test_format_figure(name: str, value: Any, shown: str) -> None:
    assert format_figure(name, value) == shown

"""The report's PNG charts (matplotlib, Agg canvas, no pyplot state), under one name.

Where they live: what is drawn, without matplotlib (:mod:`~momentumbot.reporting.chart_data`),
what every chart shares (:mod:`~momentumbot.reporting.plot_kit`), the run's charts
(:mod:`~momentumbot.reporting.run_charts`) and one symbol's chart
(:mod:`~momentumbot.reporting.symbol_chart`).
"""

from __future__ import annotations

from momentumbot.reporting.chart_data import (
    MAX_AREA_POINTS,
    MAX_LINE_POINTS,
    MAX_PNL_ROWS,
    TOP_ALLOCATION_SYMBOLS,
    CapitalBuckets,
    SymbolChart,
    allocation_layers,
    capital_buckets,
    pnl_rows,
    session_ffill,
    time_ticks,
)
from momentumbot.reporting.chart_data import clock as _clock
from momentumbot.reporting.plot_kit import (
    BAND_COLOUR,
    BENCHMARK_COLOUR,
    CASH_COLOUR,
    DPI,
    GAIN_COLOUR,
    LOSS_COLOUR,
    OTHER_COLOUR,
    PNG_COMPRESS_LEVEL,
    PRICE_COLOUR,
    STRATEGY_COLOUR,
    WIDTH_IN,
)
from momentumbot.reporting.run_charts import (
    allocation_png,
    compare_png,
    equity_png,
    pnl_by_symbol_png,
    returns_by_day_png,
)
from momentumbot.reporting.symbol_chart import SymbolFigure

__all__ = [
    "BAND_COLOUR",
    "BENCHMARK_COLOUR",
    "CASH_COLOUR",
    "DPI",
    "GAIN_COLOUR",
    "LOSS_COLOUR",
    "MAX_AREA_POINTS",
    "MAX_LINE_POINTS",
    "MAX_PNL_ROWS",
    "OTHER_COLOUR",
    "PNG_COMPRESS_LEVEL",
    "PRICE_COLOUR",
    "STRATEGY_COLOUR",
    "TOP_ALLOCATION_SYMBOLS",
    "WIDTH_IN",
    "CapitalBuckets",
    "SymbolChart",
    "SymbolFigure",
    "_clock",
    "allocation_layers",
    "allocation_png",
    "capital_buckets",
    "compare_png",
    "equity_png",
    "pnl_by_symbol_png",
    "pnl_rows",
    "returns_by_day_png",
    "session_ffill",
    "time_ticks",
]

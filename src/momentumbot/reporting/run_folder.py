"""The run folder contract: the files every run (backtest, paper, live) writes, and reads back.

Files and columns (docs/run-folder.md has the long version):
- config.toml: the effective config
- orders.csv: order_id, decided_at, symbol, side, quantity, reason, status, filled_quantity
- fills.csv: fill_id, order_id, time, symbol, side, quantity, price, commission, slippage
- equity.csv: time, cash, positions_value, equity (every bar close of the run's sessions)
- allocations.csv: time, symbol, score, budget, target_shares (every allocator run)
- benchmark.csv: time, equity (equal-weight buy-and-hold, same times as equity.csv)
- pnl_by_symbol.csv, round_trips.csv: derived from fills by reporting.metrics
- risk.csv: time, event, limit, symbol, order_id, requested, quantity, loss (what the [risk]
  limits cut, refused and halted; written when the config sets a limit)
- summary.json: every figure of STRATEGY.md section 6 plus a `benchmark` object (and a `risk`
  object when the config sets a limit)
- run.log: what happened, in words
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from momentumbot.config.loader import config_to_toml
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import DataError
from momentumbot.engine.risk_events import RISK_COLUMNS as RISK_EVENT_COLUMNS

ORDERS_COLUMNS = (
    "order_id", "decided_at", "symbol", "side", "quantity", "reason", "status", "filled_quantity",
)  # fmt: skip
FILLS_COLUMNS = (
    "fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission", "slippage",
)  # fmt: skip
EQUITY_COLUMNS = ("time", "cash", "positions_value", "equity")
ALLOCATIONS_COLUMNS = ("time", "symbol", "score", "budget", "target_shares")
BENCHMARK_COLUMNS = EQUITY_COLUMNS
RISK_COLUMNS = RISK_EVENT_COLUMNS

CONTRACT: Mapping[str, tuple[str, ...]] = {
    "orders.csv": ORDERS_COLUMNS,
    "fills.csv": FILLS_COLUMNS,
    "equity.csv": EQUITY_COLUMNS,
    "allocations.csv": ALLOCATIONS_COLUMNS,
    "benchmark.csv": BENCHMARK_COLUMNS,
    "risk.csv": RISK_COLUMNS,
}


def write_csv(df: pd.DataFrame, path: Path, columns: tuple[str, ...] | None = None) -> None:
    """Write a frame as plain CSV (no quoting, empty for missing), fast, atomically."""
    if columns is not None:
        df = df.loc[:, list(columns)]
    table = pa.Table.from_pandas(df, preserve_index=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
    tmp.replace(path)


class CsvStream:
    """A CSV file written part by part (same format as write_csv), moved into place on close."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path = path
        self.columns = columns
        self._tmp = path.with_suffix(path.suffix + ".tmp")
        self._writer: pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df.loc[:, list(self.columns)], preserve_index=False)
        if self._writer is None:
            self._writer = pacsv.CSVWriter(
                self._tmp,
                table.schema,
                write_options=pacsv.WriteOptions(quoting_style="none", quoting_header="none"),
            )
        self._writer.write_table(table)
        self.rows += len(df)

    def close(self) -> None:
        if self._writer is None:
            self._tmp.write_text(",".join(self.columns) + "\n", encoding="utf-8")
        else:
            self._writer.close()
        self._tmp.replace(self.path)


def write_json(data: Mapping[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_config(cfg: AppConfig, path: Path) -> None:
    path.write_text(config_to_toml(cfg), encoding="utf-8")


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """Read one CSV of a run folder, with its time columns as UTC datetimes."""
    path = run_dir / name
    if not path.is_file():
        raise DataError(f"{path}: missing; is {run_dir} a momentumbot run folder?")
    df = pd.read_csv(path)
    expected = CONTRACT.get(name)
    if expected is not None and tuple(df.columns[: len(expected)]) != expected:
        raise DataError(f"{path}: columns {list(df.columns)} are not {list(expected)}")
    for col in ("time", "decided_at"):
        if col in df.columns:
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601")
    return df

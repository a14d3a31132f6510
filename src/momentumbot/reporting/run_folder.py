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

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from momentumbot.config.loader import config_to_toml
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import DataError
from momentumbot.engine.risk_events import RISK_COLUMNS as RISK_EVENT_COLUMNS
from momentumbot.reporting.csv_format import Dictionaries, arrow_table

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


_CSV_OPTIONS = pacsv.WriteOptions(quoting_style="none", quoting_header="none")


def csv_table(
    df: pd.DataFrame,
    columns: tuple[str, ...] | None = None,
    dictionaries: Dictionaries | None = None,
) -> pa.Table:
    """A frame as the Arrow table write_csv formats (reporting.csv_format: categoricals stay
    dictionaries, float columns that repeat are formatted once per run of equal values)."""
    return arrow_table(df, columns, dictionaries)


def write_table(table: pa.Table, path: Path) -> None:
    """Write an Arrow table as plain CSV (no quoting, empty for missing), atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    pacsv.write_csv(table, tmp, _CSV_OPTIONS)
    tmp.replace(path)


def write_csv(
    df: pd.DataFrame,
    path: Path,
    columns: tuple[str, ...] | None = None,
    dictionaries: Dictionaries | None = None,
) -> None:
    """Write a frame as plain CSV (no quoting, empty for missing), fast, atomically."""
    write_table(csv_table(df, columns, dictionaries), path)


class BackgroundWriter:
    """Formats and writes files on a worker thread, taken in the order given, while the
    caller goes on computing. The frames are made into Arrow tables in the caller's thread
    (a few ms: the columns' arrays wrapped, repeated floats formatted once), so that the
    worker's job is one call into Arrow, which formats without the GIL: a worker that
    needs the GIL for each step waits up to the interpreter's switch interval (5 ms) for it
    at every step while the caller computes. wait() returns when every file is written and
    raises the first error a write met; while it waits, the caller writes the files the
    worker has not begun (two cores format at once once the caller is done)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: deque[Callable[[], None]] = deque()
        self._done = threading.Condition(self._lock)
        self._running = 0
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dictionaries = Dictionaries()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run folder writer is closed")
            self._queued.append(lambda: fn(*args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="run-folder", daemon=True)
                self._thread.start()
            self._done.notify_all()

    def csv(self, df: pd.DataFrame, path: Path, columns: tuple[str, ...] | None = None) -> None:
        self.submit(write_table, csv_table(df, columns, self.dictionaries), path)

    def _take(self) -> Callable[[], None] | None:
        """The next queued job (counted as running), or None; the lock is held."""
        if not self._queued:
            return None
        self._running += 1
        return self._queued.popleft()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # reported by wait(), in the caller's thread
            with self._lock:
                self._errors.append(exc)
        finally:
            with self._lock:
                self._running -= 1
                self._done.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queued and not self._closed:
                    self._done.wait()
                job = self._take()
                if job is None:  # closed and nothing left
                    return
            self._run(job)
            del job  # its table, not kept while this thread waits for the next one

    def wait(self, *, help_out: bool = True) -> None:
        """Return when every file given so far is written; raise the first error met.
        With help_out, the caller writes queued files itself instead of idling."""
        while True:
            with self._lock:
                job = self._take() if help_out else None
                if job is None:
                    while self._queued or self._running:
                        self._done.wait()
                    errors, self._errors = self._errors, []
                    break
            self._run(job)
        if errors:
            raise errors[0]

    def close(self) -> None:
        try:
            self.wait()
        finally:
            with self._lock:
                self._closed = True
                self._done.notify_all()
                thread = self._thread
            if thread is not None:
                thread.join()
            # the formatted text's pages, kept by Arrow's allocator for a thread now ended
            pa.default_memory_pool().release_unused()

    def discard(self) -> None:
        """Wait for the worker and stop it, ignoring its errors (the caller is already
        failing with its own): the files not begun are dropped, not written."""
        with self._lock:
            self._queued.clear()
        with contextlib.suppress(Exception):  # the caller's error is the one to report
            self.close()


class CsvStream:
    """A CSV file written part by part (same format as write_csv), moved into place on close.

    With ``background=True`` each part is formatted on a worker thread while the caller
    goes on (at most one part waits there, so memory stays bounded); ``seconds`` is the
    time spent formatting and writing, wherever it ran."""

    def __init__(self, path: Path, columns: tuple[str, ...], *, background: bool = False) -> None:
        self.path = path
        self.columns = columns
        self._tmp = path.with_suffix(path.suffix + ".tmp")
        self._writer: pacsv.CSVWriter | None = None
        self._background = BackgroundWriter() if background else None
        self.rows = 0
        self.seconds = 0.0

    def write_table(self, table: pa.Table) -> None:
        """Write a part already made into the Arrow table write_csv would make of it (the
        columns named and ordered as this file's), in this thread."""
        t0 = time.perf_counter()
        if self._writer is None:
            self._writer = pacsv.CSVWriter(self._tmp, table.schema, write_options=_CSV_OPTIONS)
        self._writer.write_table(table)
        self.seconds += time.perf_counter() - t0

    def write(self, df: pd.DataFrame) -> None:
        t0 = time.perf_counter()
        table = csv_table(df, self.columns)
        self.seconds += time.perf_counter() - t0
        if self._background is None:
            self.write_table(table)
        else:
            # the previous part is written (by the worker: the caller is the engine, which
            # goes on with the next chunk): one part in flight
            self._background.wait(help_out=False)
            self._background.submit(self.write_table, table)
        self.rows += len(df)

    def close(self) -> None:
        if self._background is not None:
            try:
                self._background.close()
            except BaseException:
                self.abort()
                raise
        if self._writer is None:
            self._tmp.write_text(",".join(self.columns) + "\n", encoding="utf-8")
        else:
            self._writer.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        """Stop without a file: wait for the worker, drop the partial file."""
        try:
            if self._background is not None:
                self._background.discard()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._tmp.unlink(missing_ok=True)


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

"""equity.csv and benchmark.csv written while the engine runs: each chunk's rows
(engine.results.MinuteRows, handed on as the minute loop finishes the chunk) are formatted
and written on a thread of their own, beside the next chunk's minute loop (which holds no
GIL), instead of all 2 x 97,500 rows of a year after the engine is done.

The bytes are write_csv's of the result's equity and benchmark tables: the same times'
text (engine.time_text), each float formatted by Arrow's cast as reporting.csv_format
does, the header once. The benchmark's cash (spent at each symbol's first bar, constant
after) is final only once every symbol is bought, so its rows wait for that (a run whose
symbols all trade from its first session waits for nothing)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from momentumbot.engine.results import MinuteRows
from momentumbot.engine.time_text import iso_arrow
from momentumbot.reporting.csv_format import float_cells
from momentumbot.reporting.run_folder import (
    BENCHMARK_COLUMNS,
    EQUITY_COLUMNS,
    BackgroundWriter,
    CsvStream,
)


class MinuteFiles:
    """The run's equity.csv and benchmark.csv, written part by part on a worker thread.

    `write` is the engine's `minute_sink` (returns at once); `close` waits for the parts
    in flight and moves both files into place; `abort` drops them. `seconds` and
    `cpu_seconds`: the wall and CPU time of formatting and writing them (on the worker)."""

    def __init__(self, out_dir: Path) -> None:
        self._equity = CsvStream(out_dir / "equity.csv", EQUITY_COLUMNS)
        self._benchmark = CsvStream(out_dir / "benchmark.csv", BENCHMARK_COLUMNS)
        self._worker = BackgroundWriter()
        self._waiting: list[tuple[pa.Array, MinuteRows]] = []  # benchmark rows, cash unknown
        self._done = False
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def write(self, rows: MinuteRows) -> None:
        """Take a chunk's rows, in order (formatted on the worker)."""
        if rows.close_ns.size or rows.bench_cash is not None:
            self._worker.submit(self._write, rows)

    def _write(self, rows: MinuteRows) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        times = iso_arrow(rows.close_ns)  # one text for both files
        cash, held = rows.cash, rows.positions_value
        if len(times):
            self._equity.write_table(_table(EQUITY_COLUMNS, times, cash, held, cash + held))
            self._waiting.append((times, rows))
        if rows.bench_cash is not None:
            for waited_times, waited in self._waiting:
                self._benchmark.write_table(_benchmark(waited_times, waited, rows.bench_cash))
            self._waiting.clear()
        self.seconds += time.perf_counter() - t0
        self.cpu_seconds += time.thread_time() - c0

    def close(self) -> None:
        """Every part written and both files in place (raises the first error met)."""
        if self._done:
            return
        try:
            # the parts are written in order by the worker alone: a caller helping out
            # would write a later part beside an earlier one
            self._worker.wait(help_out=False)
            self._worker.close()
        except BaseException:
            self.abort()
            raise
        self._done = True
        try:
            self._equity.close()
        except BaseException:
            self._benchmark.abort()
            raise
        self._benchmark.close()

    def abort(self) -> None:
        """Stop without the files (the parts not begun are dropped)."""
        if self._done:
            return
        self._done = True
        try:
            self._worker.discard()
        finally:
            self._equity.abort()
            self._benchmark.abort()


def _benchmark(times: pa.Array, rows: MinuteRows, cash: float) -> pa.Table:
    equity = rows.bench_equity
    constant = np.full(equity.size, cash)
    return _table(BENCHMARK_COLUMNS, times, constant, equity - cash, equity)


def _table(columns: tuple[str, ...], times: pa.Array, *values: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays([times, *(float_cells(v) for v in values)], names=list(columns))

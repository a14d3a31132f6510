"""A run folder table as the Arrow table its CSV file is written from, built column by
column from the frame's arrays (no per-row Python), with the bytes Arrow's CSV writer gives
for the frame itself (`pa.Table.from_pandas`): every value is formatted by Arrow's own cast
to text, only fewer of them.

- float64: NaN is an empty field (null), as from_pandas makes it. A column whose values
  repeat from row to row (the benchmark's cash, constant; the run's cash, which moves only
  at fills) is formatted once per run of equal values (equal bits: -0.0 stays "-0") and
  each run's text repeated, instead of once per row.
- int64 (and the other plain integers): Arrow's integer array, as from_pandas makes it.
- categorical: the codes as the indices of a dictionary of the categories (code -1 is null);
  the categories' Arrow array is kept in a `Dictionaries` cache, so two tables sharing one
  categorical (equity.csv and benchmark.csv share their times) convert it once.
- anything else: from_pandas on that column alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from momentumbot.reporting.metric_columns import engine_times

# below this many rows a column is formatted value by value (runs are not worth finding)
_MIN_ROWS_FOR_RUNS = 64


class Dictionaries:
    """Categories already converted to Arrow, by identity (the index is kept alive with its
    array, so an id is never reused while cached). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrays: dict[int, tuple[pd.Index, pa.Array]] = {}

    def get(self, categories: pd.Index) -> pa.Array:
        known = engine_times(categories)  # times the engine formatted: their text as made
        if known is not None:
            return known.text
        with self._lock:
            hit = self._arrays.get(id(categories))
        if hit is not None and hit[0] is categories:
            return hit[1]
        array = pa.Array.from_pandas(categories)
        with self._lock:
            self._arrays[id(categories)] = (categories, array)
        return array


def float_cells(values: np.ndarray) -> pa.Array:
    """A float64 column as Arrow writes it: the doubles themselves, or, when at most half
    the rows start a run of equal values, each run's text repeated (the same bytes)."""
    x = np.ascontiguousarray(values, dtype=np.float64)
    n = x.size
    if n >= _MIN_ROWS_FOR_RUNS:
        bits = x.view(np.int64)  # equal bits, so -0.0 and 0.0 are apart and NaN is one run
        head = np.empty(n, dtype=bool)
        head[0] = True
        np.not_equal(bits[1:], bits[:-1], out=head[1:])
        runs = int(np.count_nonzero(head))
        if 2 * runs <= n:
            text = pc.cast(pa.array(x[head], from_pandas=True), pa.string())
            run_of_row = np.cumsum(head, dtype=np.int64) - 1
            return text.take(pa.array(run_of_row))
    return pa.array(x, from_pandas=True)


def _categorical_cells(column: pd.Series, dictionaries: Dictionaries) -> pa.Array:
    cat = column.array
    codes = np.asarray(cat.codes)
    indices = pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes)
    return pa.DictionaryArray.from_arrays(indices, dictionaries.get(cat.categories))


def column_cells(frame: pd.DataFrame, name: str, dictionaries: Dictionaries) -> pa.Array:
    """One column of a frame as the Arrow array its CSV text is cast from."""
    column = frame[name]
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_cells(column, dictionaries)
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        return float_cells(column.to_numpy())
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return pa.array(column.to_numpy())
    return (
        pa.Table.from_pandas(frame.loc[:, [name]], preserve_index=False).column(0).combine_chunks()
    )


def arrow_table(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    dictionaries: Dictionaries | None = None,
) -> pa.Table:
    """The frame's columns (all, or `columns` in that order) as the table write_csv writes."""
    names = list(frame.columns) if columns is None else list(columns)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in the table")
    cache = dictionaries if dictionaries is not None else Dictionaries()
    arrays = [column_cells(frame, str(name), cache) for name in names]
    return pa.Table.from_arrays(arrays, names=[str(n) for n in names])

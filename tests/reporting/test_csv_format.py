"""The run folder's CSV tables, built column by column (reporting.csv_format), give the very
bytes Arrow's CSV writer gives for the frame itself, whatever the values; and the writer's
caller takes queued files while it waits."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.csv_format import Dictionaries, arrow_table, float_cells


def _reference_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    """What the run folder wrote before: Arrow's writer on from_pandas' table."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none", quoting_header="none"))
    return path.read_bytes()


def _awkward_floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(8.0, 3.0, n) * rng.choice([-1.0, 1.0], n)
    x[::5] = np.round(x[::5], 2)  # cents, as cash and prices are
    x[1::11] = np.nan
    x[2::13] = 0.0
    x[3::17] = -0.0
    x[4::19] = np.inf
    x[5::23] = -np.inf
    x[6::29] = 1e-7 * rng.random()  # written with an exponent
    x[7::31] = 1e22 * rng.random()
    x[8::37] = 0.1 + 0.2
    x[9::41] = 2.0**60
    return x


def test_float_columns_give_arrows_bytes_with_and_without_runs(tmp_path: Path) -> None:
    x = _awkward_floats(5_000, 1)
    # the same values held for a few rows each: formatted once per run of equal bits
    held = np.repeat(x[:1_000], 5)
    constant = np.full(3_000, 123_456.78)
    signed_zeros = np.tile([0.0, 0.0, -0.0, -0.0, -0.0], 40)
    for values in (x, held, constant, signed_zeros, x[:10]):
        frame = pd.DataFrame({"v": values})
        expected = _reference_bytes(frame, tmp_path / "expected.csv")
        rf.write_csv(frame, tmp_path / "got.csv")
        assert (tmp_path / "got.csv").read_bytes() == expected
    assert float_cells(held).type == pa.string()  # the runs' text, repeated
    assert float_cells(x).type == pa.float64()  # nothing repeats: Arrow formats each value


def test_every_kind_of_column_gives_arrows_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 500
    times = pd.date_range("2024-01-02 14:31", periods=n, freq="min", tz="UTC")
    text = np.array([t.isoformat() for t in times], dtype=object)
    codes = rng.integers(-1, 7, n)  # -1: no category, an empty field
    frame = pd.DataFrame(
        {
            "time": pd.Categorical.from_codes(
                np.arange(n), dtype=pd.CategoricalDtype(pd.Index(text, dtype=object))
            ),
            "symbol": pd.Categorical.from_codes(codes, categories=pd.Index(list("ABCDEFG"))),
            "side": pd.Categorical(rng.choice(["BUY", "SELL"], n)),  # pandas' own str categories
            "quantity": rng.integers(-(2**40), 2**40, n),
            "small": rng.integers(0, 100, n).astype(np.int32),
            "price": _awkward_floats(n, 3),
            "name": np.array([f"S{i}" for i in rng.integers(0, 50, n)], dtype=object),
            "flag": rng.random(n) > 0.5,
            "stamp": times,
        }
    )
    expected = _reference_bytes(frame, tmp_path / "expected.csv")
    rf.write_csv(frame, tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == expected
    # a subset of the columns, in another order, as the contract's column lists ask
    cols = ("quantity", "time", "price")
    expected = _reference_bytes(frame.loc[:, list(cols)], tmp_path / "expected.csv")
    rf.write_csv(frame, tmp_path / "got.csv", cols)
    assert (tmp_path / "got.csv").read_bytes() == expected
    # no rows: the header alone
    empty = frame.iloc[0:0]
    expected = _reference_bytes(empty, tmp_path / "expected.csv")
    rf.write_csv(empty, tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == expected


def test_tables_sharing_a_categorical_convert_its_categories_once() -> None:
    times = pd.Categorical(["2024-01-02T14:31:00+00:00", "2024-01-02T14:32:00+00:00"])
    equity = pd.DataFrame({"time": times, "equity": [1.0, 2.0]})
    benchmark = pd.DataFrame({"time": times, "equity": [1.5, 2.5]})
    shared = Dictionaries()
    first = arrow_table(equity, None, shared).column("time").chunk(0)
    second = arrow_table(benchmark, None, shared).column("time").chunk(0)
    # the same Arrow buffers, not a second conversion of the categories
    assert first.dictionary.buffers()[2].address == second.dictionary.buffers()[2].address
    assert second.to_pylist() == list(times)
    other = arrow_table(equity.assign(time=equity["time"].astype(str)), None, shared)
    assert other.column("time").to_pylist() == list(times)


def test_a_waiting_caller_writes_the_files_the_worker_has_not_begun(tmp_path: Path) -> None:
    files = rf.BackgroundWriter()
    started, release = threading.Event(), threading.Event()
    ran_in: dict[str, str] = {}

    def slow() -> None:  # holds the worker until the caller has written the next file
        started.set()
        release.wait()
        ran_in["slow"] = threading.current_thread().name

    def quick() -> None:
        ran_in["quick"] = threading.current_thread().name
        release.set()

    files.submit(slow)
    started.wait()
    files.submit(quick)
    files.csv(pd.DataFrame({"a": [1, 2]}), tmp_path / "a.csv")
    files.close()
    caller = threading.current_thread().name
    assert ran_in == {"slow": "run-folder", "quick": caller}
    assert (tmp_path / "a.csv").read_text() == "a\n1\n2\n"

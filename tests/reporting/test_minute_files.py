"""equity.csv and benchmark.csv written chunk by chunk while the engine runs
(reporting.minute_files) are byte for byte the files written from the whole tables after
it, however the rows are cut and whenever the benchmark's cash becomes known."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.app.backtest import backtest_to_folder, write_results
from momentumbot.config.loader import parse_config
from momentumbot.data.store import BarStore
from momentumbot.engine.results import MinuteRows, _iso
from momentumbot.reporting import run_folder as rf
from momentumbot.reporting.minute_files import MinuteFiles

from .conftest import Runs

NS_PER_MINUTE = 60_000_000_000


def _rows(n: int, seed: int) -> MinuteRows:
    """n minutes of a run: cash that moves at a few fills, awkward marks, a benchmark."""
    rng = np.random.default_rng(seed)
    close_ns = (1_704_205_860 + 60 * np.arange(n)) * 1_000_000_000
    cash = np.repeat(rng.integers(-(10**12), 10**12, n // 7 + 1), 7)[:n] / 1e6
    held = rng.lognormal(8.0, 3.0, n) * rng.choice([-1.0, 0.0, 1.0], n)
    held[3::17] = -0.0
    held[5::23] = 0.1 + 0.2
    bench = 100_000.0 + np.cumsum(rng.normal(0.0, 50.0, n))
    return MinuteRows(close_ns, cash, held, bench, None)


def _cut(rows: MinuteRows, sizes: list[int], settled_from: int, cash: float) -> list[MinuteRows]:
    """The rows in parts of these sizes, the benchmark's cash known from part settled_from."""
    edges = np.cumsum([0, *sizes])
    return [
        MinuteRows(
            rows.close_ns[lo:hi],
            rows.cash[lo:hi],
            rows.positions_value[lo:hi],
            rows.bench_equity[lo:hi],
            cash if i >= settled_from else None,
        )
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]


def _whole_tables(rows: MinuteRows, bench_cash: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables as engine.results.collect_result makes them."""
    times = _iso(rows.close_ns)
    cash, held = rows.cash, rows.positions_value
    equity = pd.DataFrame(
        {"time": times, "cash": cash, "positions_value": held, "equity": cash + held}
    )
    eq = rows.bench_equity
    bench = pd.DataFrame(
        {"time": times, "cash": bench_cash, "positions_value": eq - bench_cash, "equity": eq}
    )
    return equity, bench


@pytest.mark.parametrize(
    ("sizes", "settled_from"),
    [
        ([5_000], 0),  # one part
        ([1_200, 0, 30, 2_000, 1_770], 0),  # a part with no run minutes, one under 64 rows
        ([700, 700, 700, 2_900], 3),  # the benchmark waits for its cash until the last part
        ([2_500, 2_500], 1),
    ],
)
def test_parts_give_the_bytes_of_the_whole_tables(
    tmp_path: Path, sizes: list[int], settled_from: int
) -> None:
    rows = _rows(sum(sizes), seed=len(sizes))
    bench_cash = 1_234.56
    files = MinuteFiles(tmp_path)
    for part in _cut(rows, sizes, settled_from, bench_cash):
        files.write(part)
    files.close()
    assert files.seconds > 0
    equity, bench = _whole_tables(rows, bench_cash)
    rf.write_csv(equity, tmp_path / "equity-whole.csv", rf.EQUITY_COLUMNS)
    rf.write_csv(bench, tmp_path / "benchmark-whole.csv", rf.BENCHMARK_COLUMNS)
    for name in ("equity", "benchmark"):
        got = (tmp_path / f"{name}.csv").read_bytes()
        assert got == (tmp_path / f"{name}-whole.csv").read_bytes(), name
    assert not list(tmp_path.glob("*.tmp"))


def test_no_rows_give_the_headers(tmp_path: Path) -> None:
    files = MinuteFiles(tmp_path)
    files.write(_cut(_rows(0, 1), [0], 0, 10.0)[0])
    files.close()
    equity, bench = _whole_tables(_rows(0, 1), 10.0)
    rf.write_csv(equity, tmp_path / "equity-whole.csv", rf.EQUITY_COLUMNS)
    rf.write_csv(bench, tmp_path / "benchmark-whole.csv", rf.BENCHMARK_COLUMNS)
    for name in ("equity", "benchmark"):
        got = (tmp_path / f"{name}.csv").read_bytes()
        assert got == (tmp_path / f"{name}-whole.csv").read_bytes(), name
    assert (tmp_path / "benchmark.csv").read_text() == "time,cash,positions_value,equity\n"


def test_an_aborted_run_leaves_neither_file(tmp_path: Path) -> None:
    files = MinuteFiles(tmp_path)
    for part in _cut(_rows(300, 2), [100, 200], 1, 5.0):
        files.write(part)
    files.abort()
    files.abort()  # a second abort (the caller's, after the writer's own) does nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_part_the_worker_cannot_write_fails_at_close(tmp_path: Path) -> None:
    files = MinuteFiles(tmp_path / "no-such-folder")
    files.write(_cut(_rows(100, 3), [100], 0, 5.0)[0])
    with pytest.raises(FileNotFoundError):
        files.close()
    files.abort()  # after the failed close: nothing left to drop, no second error
    assert not (tmp_path / "no-such-folder").exists()


def test_a_backtest_streams_the_files_write_results_writes(runs: Runs, tmp_path: Path) -> None:
    """backtest_to_folder (equity and benchmark rows written while the engine runs) and
    write_results on its result alone (every file after the engine): the same files."""
    cfg = parse_config({"symbols": ["SYN001", "SYN002", "SYN003"]})
    run = backtest_to_folder(cfg, BarStore(runs.store), tmp_path / "streamed")
    assert run.result.timings["minutes_seconds"] > 0
    assert len(run.result.equity) > 1_000
    (tmp_path / "after").mkdir()
    write_results(cfg, run.result, tmp_path / "after", engine_seconds=0.0)
    # (allocations.csv is not in the result: its rows went to their own stream)
    for name in ("equity.csv", "benchmark.csv", "orders.csv", "fills.csv", "round_trips.csv"):
        streamed = (tmp_path / "streamed" / name).read_bytes()
        assert streamed == (tmp_path / "after" / name).read_bytes(), name

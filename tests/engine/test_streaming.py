"""The backtest streams bars chunk by chunk, reading ahead on a worker thread: whatever the
chunking, the bar source or where allocation rows go, the run is the same."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from momentumbot.config.loader import parse_config
from momentumbot.data import store as store_mod
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.memory import MemoryBarSource
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import generate_bars
from momentumbot.engine import backtest as backtest_mod
from momentumbot.engine import kernel as k
from momentumbot.engine.backtest import BacktestResult, MinuteRows, run_backtest

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    cal = TradingCalendar("XNYS")
    frames = generate_bars(SYMBOLS, cal.sessions("2024-03-01", "2024-03-22"), seed=5, calendar=cal)
    # pre-market bars (off the grid: skipped) and a symbol that starts mid-run
    pre = frames["AAA"].iloc[::390].copy()
    pre["ts"] = pre["ts"] - pd.Timedelta(minutes=45)
    frames["AAA"] = pd.concat([frames["AAA"], pre]).sort_values("ts", ignore_index=True)
    frames["DDD"] = frames["DDD"][frames["DDD"]["ts"] >= pd.Timestamp("2024-03-12", tz="UTC")]
    return frames


@pytest.fixture(scope="module")
def store(bars: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    """The bars in a store of 500-row groups: a chunk ends inside a row group."""
    root = tmp_path_factory.mktemp("streaming") / "store"
    mp = pytest.MonkeyPatch()
    mp.setattr(store_mod, "ROW_GROUP_ROWS", 500)
    try:
        BarStore(root).write_many([(s, f, "test") for s, f in bars.items()])
    finally:
        mp.undo()
    return BarStore(root)


def _frames(r: BacktestResult) -> dict[str, pd.DataFrame]:
    return {
        "orders": r.orders,
        "fills": r.fills,
        "allocations": r.allocations,
        "equity": r.equity,
        "benchmark_fills": r.benchmark_fills,
    }


def _same(a: BacktestResult, b: BacktestResult) -> None:
    for name, frame in _frames(a).items():
        pd.testing.assert_frame_equal(
            frame.astype(str), _frames(b)[name].astype(str), check_exact=True, obj=name
        )
    assert a.bars_used == b.bars_used
    assert a.final_positions == b.final_positions


def test_chunking_source_and_sink_change_nothing(
    store: BarStore, bars: dict[str, pd.DataFrame]
) -> None:
    cfg = parse_config({"symbols": SYMBOLS, "allocation": {"quiet_window_minutes": 600}})
    start, end = "2024-03-06", "2024-03-21"
    ref = run_backtest(cfg, store, start=start, end=end, chunk_sessions=100)  # one chunk
    assert len(ref.fills) > 0 and len(ref.allocations) > 0
    assert ref.plan.n_warmup_sessions >= 1
    memory = MemoryBarSource(bars)
    for source in (store, memory):
        for chunk in (1, 2, 5, None):
            _same(run_backtest(cfg, source, start=start, end=end, chunk_sessions=chunk), ref)
    parts: list[pd.DataFrame] = []
    sunk = run_backtest(
        cfg, store, start=start, end=end, chunk_sessions=2, allocation_sink=parts.append
    )
    assert len(sunk.allocations) == 0
    assert len(parts) > 1  # handed on chunk by chunk, in order
    pd.testing.assert_frame_equal(
        pd.concat(parts, ignore_index=True).astype(str), ref.allocations.astype(str)
    )
    assert np.isfinite(sunk.timings["kernel"]) and sunk.timings["engine_wall"] > 0


def test_the_minute_rows_handed_on_are_the_results_equity_and_benchmark(store: BarStore) -> None:
    """Each chunk's equity and benchmark rows are handed on as it is run; the benchmark's
    cash only once every symbol is bought (DDD starts mid-run), and then the final one."""
    cfg = parse_config({"symbols": SYMBOLS})
    parts: list[MinuteRows] = []
    r = run_backtest(
        cfg, store, start="2024-03-06", end="2024-03-21", chunk_sessions=2,
        minute_sink=parts.append,
    )  # fmt: skip
    assert len(parts) > 3
    bench_cash = float(r.benchmark_equity["cash"].iloc[0])
    settled = [p.bench_cash for p in parts]
    assert settled[0] is None and settled[-1] == bench_cash
    assert all(c == bench_cash for c in settled[settled.index(bench_cash) :])
    assert parts[0].close_ns.size == 390  # the first chunk: a warm-up session, then one
    whole = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ("close_ns", "cash", "positions_value", "bench_equity")
    }
    times = pd.to_datetime(whole["close_ns"], unit="ns", utc=True).map(lambda t: t.isoformat())
    assert list(times) == list(r.equity["time"].astype(str))
    np.testing.assert_array_equal(whole["cash"], r.equity["cash"].to_numpy())
    np.testing.assert_array_equal(whole["positions_value"], r.equity["positions_value"])
    np.testing.assert_array_equal(whole["bench_equity"], r.benchmark_equity["equity"])


def test_a_failing_sink_stops_the_run(store: BarStore) -> None:
    cfg = parse_config({"symbols": SYMBOLS})

    def sink(part: pd.DataFrame) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_backtest(cfg, store, start="2024-03-06", end="2024-03-21", chunk_sessions=2,
                     allocation_sink=sink)  # fmt: skip


def test_tables_grown_many_times_change_nothing(
    store: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Order, fill and allocation tables that start with room for a few rows are grown
    (column by column) again and again inside the chunks: the same run."""
    cfg = parse_config({"symbols": SYMBOLS})
    start, end = "2024-03-06", "2024-03-21"
    ref = run_backtest(cfg, store, start=start, end=end, chunk_sessions=3)
    grows: list[int] = []
    real_grown = backtest_mod.grown

    def counting(tables: object, name: str, used: int, n: int) -> object:
        before = getattr(tables, name)[0].shape[0]
        out = real_grown(tables, name, used, n)  # type: ignore[arg-type]
        if out[0].shape[0] != before:
            grows.append(out[0].shape[0])
        return out

    for make in ("new_orders", "new_fills", "new_allocs"):
        real = getattr(k, make)
        monkeypatch.setattr(k, make, lambda capacity, real=real: real(8))
    monkeypatch.setattr(backtest_mod, "grown", counting)
    tiny = run_backtest(cfg, store, start=start, end=end, chunk_sessions=3)
    assert len(grows) >= 6  # each table grew, several times
    assert len(ref.orders) > 64 and len(ref.fills) > 64
    _same(tiny, ref)


def test_the_collector_is_not_left_frozen(store: BarStore) -> None:
    """The engine phase keeps the objects alive before it out of the cyclic collector's
    passes; after the run (and after a failed run) they are back in them."""
    cfg = parse_config({"symbols": SYMBOLS})
    assert gc.get_freeze_count() == 0
    run_backtest(cfg, store, start="2024-03-06", end="2024-03-08")
    assert gc.get_freeze_count() == 0

    def sink(part: pd.DataFrame) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        run_backtest(cfg, store, start="2024-03-06", end="2024-03-21", chunk_sessions=2,
                     allocation_sink=sink)  # fmt: skip
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_objects_keeps_them_frozen(store: BarStore) -> None:
    cfg = parse_config({"symbols": SYMBOLS})
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        run_backtest(cfg, store, start="2024-03-06", end="2024-03-08")
        assert gc.get_freeze_count() > 0  # not unfrozen by the run (that would leave 0)
    finally:
        gc.unfreeze()

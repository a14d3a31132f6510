"""Reading bars forward chunk by chunk: the same bars as one read, each row group once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.data import store as store_mod
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.forward import ForwardReader
from momentumbot.data.memory import MemoryBarSource
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import generate_bars
from momentumbot.domain.errors import DataError

SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    cal = TradingCalendar("XNYS")
    frames = generate_bars(SYMBOLS, cal.sessions("2024-03-01", "2024-03-14"), seed=3, calendar=cal)
    # CCC starts late: nothing to read for its first chunks
    frames["CCC"] = frames["CCC"][frames["CCC"]["ts"] >= pd.Timestamp("2024-03-08", tz="UTC")]
    return frames


@pytest.fixture(scope="module")
def small_groups(
    bars: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> BarStore:
    """The bars in a store of 700-row groups (about two sessions each)."""
    root = tmp_path_factory.mktemp("forward") / "store"
    mp = pytest.MonkeyPatch()
    mp.setattr(store_mod, "ROW_GROUP_ROWS", 700)
    try:
        store = BarStore(root)
        store.write_many([(s, f, "test") for s, f in bars.items()])
    finally:
        mp.undo()
    assert store.row_group_spans("AAA")[0].shape[0] >= 5
    return BarStore(root)


def _ns(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value)


@pytest.mark.parametrize("step_days", [1, 3, 20])
@pytest.mark.parametrize("kind", ["store", "memory"])
def test_takes_add_up_to_one_read(
    kind: str, step_days: int, small_groups: BarStore, bars: dict[str, pd.DataFrame]
) -> None:
    source = small_groups if kind == "store" else MemoryBarSource(bars)
    start, end = _ns("2024-03-04"), _ns("2024-03-13")
    reader = ForwardReader(source, SYMBOLS, start)
    got: dict[str, list[tuple[np.ndarray, ...]]] = {s: [] for s in SYMBOLS}
    cut = start
    while cut < end:
        cut = min(cut + step_days * 86_400_000_000_000, end)
        for j, s in enumerate(SYMBOLS):
            got[s].append(reader.take(j, cut))
    for s in SYMBOLS:
        want = small_groups.read_arrays(s, start, end)
        parts = got[s]
        for k, name in enumerate(("ts", "open", "close", "volume")):
            joined = np.concatenate([p[k] for p in parts])
            np.testing.assert_array_equal(joined, getattr(want, name), err_msg=f"{s} {name}")
        assert all(not p[0].flags.writeable for p in parts)


def test_each_row_group_is_decoded_once(
    small_groups: BarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[tuple[str, int]] = []
    original = BarStore.read_groups

    def counting(
        self: BarStore, symbol: str, first: int, stop: int, columns: tuple[str, ...]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        decoded.extend((symbol, g) for g in range(first, stop))
        assert "high" not in columns and "low" not in columns  # only what the engine reads
        return original(self, symbol, first, stop, columns)

    monkeypatch.setattr(BarStore, "read_groups", counting)
    start, end = _ns("2024-03-04"), _ns("2024-03-13")
    reader = ForwardReader(small_groups, SYMBOLS, start)
    cut = start
    while cut < end:  # chunks of a quarter of a day: far smaller than a row group
        cut = min(cut + 21_600_000_000_000, end)
        for j in range(len(SYMBOLS)):
            reader.take(j, cut)
    assert len(decoded) == len(set(decoded))
    for s in SYMBOLS:
        lo, hi = small_groups.row_group_spans(s)
        needed = {(s, g) for g in range(lo.shape[0]) if hi[g] >= start and lo[g] < end}
        assert {d for d in decoded if d[0] == s} == needed


def test_a_store_read_names_a_broken_file(small_groups: BarStore, tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    store.bars_dir.mkdir(parents=True)
    good = small_groups.path("AAA").read_bytes()
    store.path("AAA").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"AAA\.parquet: unreadable Parquet file"):
        store.read_groups("AAA", 0, 2, ("open",))


def test_a_closed_reader_holds_no_rows_and_reads_no_more(small_groups: BarStore) -> None:
    start = _ns("2024-03-04")
    reader = ForwardReader(small_groups, SYMBOLS, start)
    first = reader.take(0, _ns("2024-03-05"))
    assert first[0].shape[0] > 0
    reader.close()
    assert all(p is None for p in reader._pending)  # the decoded rows are dropped
    with pytest.raises(RuntimeError, match="after close"):
        reader.take(0, _ns("2024-03-06"))  # not the first bars again from `start`

"""quiet_volume: the mean of the floor(n/2) smallest of the last n minute volumes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from momentumbot.allocation.quiet_volume import quiet_volume, qv_push


def window(w: int):
    return np.zeros((1, w)), np.zeros((1, w)), np.zeros(1, np.int64), np.zeros(1, np.int64)


def test_growing_window() -> None:
    ring, srt, count, head = window(390)
    for x in (50.0, 10.0, 30.0, 20.0, 40.0):
        qv_push(ring, srt, count, head, 0, x, 390)
    # n = 5, floor(5/2) = 2 smallest: 10, 20
    assert count[0] == 5
    assert quiet_volume(srt, count, 0) == 15.0


def test_one_minute_has_no_quiet_half() -> None:
    ring, srt, count, head = window(390)
    qv_push(ring, srt, count, head, 0, 100.0, 390)
    assert quiet_volume(srt, count, 0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=2, max_value=40),
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=200),
)
def test_matches_a_direct_computation_over_the_last_w(w: int, vols: list[int]) -> None:
    ring, srt, count, head = window(w)
    for i, x in enumerate(vols):
        qv_push(ring, srt, count, head, 0, float(x), w)
        last = sorted(vols[max(0, i + 1 - w) : i + 1])
        k = len(last) // 2
        expected = sum(last[:k]) / k if k else 0.0
        assert quiet_volume(srt, count, 0) == expected
        assert srt[0, : count[0]].tolist() == [float(v) for v in last]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=2, max_value=70),  # one to five blocks of the full window's search
    st.integers(min_value=0, max_value=120),
    st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=50)), max_size=250),
    st.sampled_from([1, 2, 3, 5]),
)
def test_the_chunk_pass_matches_a_direct_computation(
    w: int, pushed: int, cells: list[int | None], every: int
) -> None:
    """The per-chunk pass (running lower-half sum) gives quiet_volume's figure to the bit at
    every allocator minute, whatever state the window is in when the chunk starts (growing,
    full, not started) and with minutes without a bar (volume 0 once started)."""
    from momentumbot.allocation.quiet_volume import quiet_volume_pass_columns

    ring, srt, count, head = window(w)
    history = [float((7 * i) % 53) for i in range(pushed)]
    for x in history:
        qv_push(ring, srt, count, head, 0, x, w)
    started = np.array([pushed > 0])
    volume = np.array([[float(c) if c is not None else np.nan for c in cells]])
    close = np.array([[1.0 if c is not None else np.nan for c in cells]])
    alloc_row = np.full(len(cells), -1, np.int64)
    alloc_row[::every] = np.arange(len(alloc_row[::every]))
    qv_out = np.full((len(alloc_row[::every]), 1), -1.0)
    n_out = np.full((len(alloc_row[::every]), 1), -1, np.int64)
    quiet_volume_pass_columns(
        volume, close, alloc_row, ring, srt, count, head, started, w, qv_out, n_out
    )
    seen = list(history)
    on = pushed > 0
    for m, c in enumerate(cells):
        on = on or c is not None
        if on:
            seen.append(float(c) if c is not None else 0.0)
        if alloc_row[m] >= 0:
            last = sorted(seen[-w:]) if seen else []
            k = len(last) // 2
            assert n_out[alloc_row[m], 0] == len(last)
            assert qv_out[alloc_row[m], 0] == (sum(last[:k]) / k if k else 0.0)
    assert srt[0, : count[0]].tolist() == sorted(seen[-w:])

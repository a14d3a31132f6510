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


def test_the_pass_is_exact_for_wide_volumes_and_far_apart_allocator_minutes() -> None:
    """Large whole-number volumes (no ties to lean on), a 390-minute window, several
    symbols, and allocator minutes from every minute to hundreds apart (the last figure is
    then far from the new one), split over three chunks: every figure is the direct one."""
    from momentumbot.allocation.quiet_volume import quiet_volume_pass_columns

    rng = np.random.default_rng(4)
    n_sym, n_min, w = 3, 2_400, 390
    volume = np.floor(rng.lognormal(8.0, 1.5, (n_sym, n_min)))
    volume[1, 700:1_500] = np.floor(volume[1, 700:1_500] * 50)  # a regime shift
    close = np.ones((n_sym, n_min))
    close[2, :300] = np.nan  # starts late
    close[0, 1_000:1_100] = np.nan  # no bars for a while: volume 0
    gaps = [1, 1, 5, 5, 30, 200, 7, 390, 2, 60, 1, 500, 3]
    at = list(np.cumsum(np.tile(gaps, 10)))
    at = [m for m in at if m < n_min]
    ring = np.zeros((n_sym, w))
    srt = np.zeros((n_sym, w))
    count = np.zeros(n_sym, np.int64)
    head = np.zeros(n_sym, np.int64)
    started = np.zeros(n_sym, np.bool_)
    got = np.full((len(at), n_sym), -1.0)
    got_n = np.full((len(at), n_sym), -1, np.int64)
    row = np.full(n_min, -1, np.int64)
    row[at] = np.arange(len(at))
    for lo, hi in ((0, 350), (350, 1_600), (1_600, n_min)):
        qv = np.full((len(at), n_sym), -1.0)
        qn = np.full((len(at), n_sym), -1, np.int64)
        sub = row[lo:hi]
        quiet_volume_pass_columns(
            np.ascontiguousarray(volume[:, lo:hi]), np.ascontiguousarray(close[:, lo:hi]), sub,
            ring, srt, count, head, started, w, qv, qn,
        )  # fmt: skip
        used = sub[sub >= 0]
        got[used] = qv[used]
        got_n[used] = qn[used]
    for s in range(n_sym):
        seen: list[float] = []
        on = False
        for m in range(n_min):
            on = on or not np.isnan(close[s, m])
            if on:
                seen.append(0.0 if np.isnan(close[s, m]) else float(volume[s, m]))
            if row[m] >= 0:
                last = sorted(seen[-w:])
                k = len(last) // 2
                assert got_n[row[m], s] == len(last)
                assert got[row[m], s] == (sum(last[:k]) / k if k else 0.0), (s, m)
        assert srt[s, : count[s]].tolist() == sorted(seen[-w:])

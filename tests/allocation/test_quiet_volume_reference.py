"""quiet_volume's walk (its k-th smallest stepped at the allocator's minutes) against a brute-force reference:
STRATEGY.md section 4.1 computed directly from the list of a symbol's minute volumes."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from momentumbot.allocation.quiet_volume import quiet_volume_minute, quiet_volume_pass_columns


def reference(
    volume: np.ndarray, close: np.ndarray, started: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, list[list[float]]]:
    """(figure, n) at every minute, symbols x minutes, and each symbol's last window sorted:
    a symbol's history starts at its first bar (or before the series, if started), a minute
    without a bar counts as volume 0, and the figure is the mean of the floor(n/2) smallest
    of the last n = min(window, available)."""
    n_sym, n_min = volume.shape
    qv = np.zeros((n_sym, n_min))
    nn = np.zeros((n_sym, n_min), np.int64)
    windows = []
    for s in range(n_sym):
        seen: list[float] = []
        on = bool(started[s])
        for m in range(n_min):
            bar = not math.isnan(close[s, m])
            on = on or bar
            if on:
                seen.append(float(volume[s, m]) if bar else 0.0)
            last = sorted(seen[-window:])
            k = len(last) // 2
            qv[s, m] = sum(last[:k]) / k if k else 0.0
            nn[s, m] = len(last)
        windows.append(sorted(seen[-window:]))
    return qv, nn, windows


class Windows:
    def __init__(self, n_sym: int, window: int, started: np.ndarray) -> None:
        self.ring = np.zeros((n_sym, window))
        self.srt = np.zeros((n_sym, window))
        self.count = np.zeros(n_sym, np.int64)
        self.head = np.zeros(n_sym, np.int64)
        self.started = started.copy()
        self.window = window

    def walk(
        self, volume: np.ndarray, close: np.ndarray, cuts: list[int], every: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pass over the series in chunks cut at `cuts`, the figures at every `every`-th
        minute (-1 at the others)."""
        n_sym, n_min = volume.shape
        qv = np.full((n_min, n_sym), -1.0)
        nn = np.full((n_min, n_sym), -1, np.int64)
        bounds = [0, *sorted(set(cuts)), n_min]
        for lo, hi in itertools.pairwise(bounds):
            rows = np.arange(lo, hi, dtype=np.int64)
            rows[rows % every != 0] = -1
            quiet_volume_pass_columns(
                np.ascontiguousarray(volume[:, lo:hi]), np.ascontiguousarray(close[:, lo:hi]),
                rows, self.ring, self.srt, self.count, self.head, self.started, self.window,
                qv, nn,
            )  # fmt: skip
        return qv.T, nn.T

    def sorted_windows(self) -> list[list[float]]:
        return [self.srt[s, : self.count[s]].tolist() for s in range(self.count.shape[0])]


def series(draw_volumes: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    volume = draw_volumes.astype(np.float64)
    close = np.where(gaps, np.nan, 1.0)
    return np.where(gaps, np.nan, volume), close


@settings(max_examples=120, deadline=None)
@given(
    st.integers(min_value=1, max_value=80),  # window
    st.integers(min_value=1, max_value=3),  # symbols
    st.integers(min_value=1, max_value=400),  # minutes
    st.sampled_from([0, 3, 1_000, 10**12]),  # volume range (0: all zero; 10**12: wide)
    st.floats(min_value=0.0, max_value=0.6),  # share of minutes without a bar
    st.lists(st.integers(min_value=0, max_value=400), max_size=4),  # chunk cuts
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_minute_equals_the_brute_force_figure(
    window: int, n_sym: int, n_min: int, top: int, gap_share: float, cuts: list[int], seed: int
) -> None:
    """Whole-number volumes (ties, zeros, wide ranges), minutes without a bar, symbols
    starting late or with history before the series, the window filling up, chunks cut
    anywhere: the figure and n at every minute equal the direct computation to the bit,
    and the sorted copy left behind is the last window sorted."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, top + 1, (n_sym, n_min))
    gaps = rng.random((n_sym, n_min)) < gap_share
    volume, close = series(raw, gaps)
    started = rng.random(n_sym) < 0.5
    want_qv, want_n, want_windows = reference(volume, close, started, window)
    w = Windows(n_sym, window, started)
    got_qv, got_n = w.walk(volume, close, [c for c in cuts if c < n_min])
    assert np.array_equal(got_n, want_n)
    assert np.array_equal(got_qv, want_qv)  # bit for bit
    assert w.sorted_windows() == want_windows


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=1, max_value=60),  # window
    st.integers(min_value=1, max_value=400),  # minutes
    st.integers(min_value=1, max_value=40),  # a figure every this many minutes
    st.lists(st.integers(min_value=0, max_value=400), max_size=3),  # chunk cuts
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_sparse_figures_and_signed_zeros_equal_the_brute_force_figure(
    window: int, n_min: int, every: int, cuts: list[int], seed: int
) -> None:
    """The figure asked for only every few minutes (the allocator's minutes: the walk then
    steps its k-th smallest over all the minutes between), from volumes with -0.0 beside
    0.0, many ties and (not from the store, which refuses them) negative values: equal to
    the direct computation to the bit at every minute asked."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-4, 9, (2, n_min)).astype(np.float64)
    raw[rng.random((2, n_min)) < 0.3] = -0.0
    gaps = rng.random((2, n_min)) < 0.2
    volume, close = series(raw, gaps)
    started = np.array([False, True])
    want_qv, want_n, want_windows = reference(volume, close, started, window)
    w = Windows(2, window, started)
    got_qv, got_n = w.walk(volume, close, [c for c in cuts if c < n_min], every)
    asked = np.arange(n_min) % every == 0
    assert np.array_equal(got_n[:, asked], want_n[:, asked])
    assert np.array_equal(got_qv[:, asked], want_qv[:, asked])  # bit for bit
    assert w.sorted_windows() == want_windows
    assert not np.signbit(w.srt[w.srt == 0.0]).any()  # -0.0 is kept as 0.0


@settings(max_examples=12, deadline=None)
@given(
    st.integers(min_value=200, max_value=600),  # windows past 255 and 511 (pair slot bits)
    st.integers(min_value=1, max_value=1_500),  # minutes
    st.sampled_from([1, 5, 37]),  # a figure every this many minutes
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_wide_windows_equal_the_brute_force_figure(
    window: int, n_min: int, every: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 50, (1, n_min)).astype(np.float64)
    gaps = rng.random((1, n_min)) < 0.1
    volume, close = series(raw, gaps)
    started = np.array([seed % 2 == 0])
    want_qv, want_n, want_windows = reference(volume, close, started, window)
    w = Windows(1, window, started)
    got_qv, got_n = w.walk(volume, close, [n_min // 3, n_min // 2], every)
    asked = np.arange(n_min) % every == 0
    assert np.array_equal(got_n[:, asked], want_n[:, asked])
    assert np.array_equal(got_qv[:, asked], want_qv[:, asked])
    assert w.sorted_windows() == want_windows


def test_a_volume_that_is_not_a_finite_number_counts_as_zero() -> None:
    """A bar with a NaN or infinite volume (the store refuses them; a broker's history might
    not) counts as volume 0, as a minute without a bar: the walk neither hangs nor spreads
    the NaN, compiled or not, in the long and the short walks."""
    rng = np.random.default_rng(5)
    n_min = 300
    raw = rng.integers(0, 40, (1, n_min)).astype(np.float64)
    raw[0, rng.random(n_min) < 0.3] = np.nan
    raw[0, 100:110] = np.inf
    raw[0, 120] = -np.inf
    close = np.ones_like(raw)
    started = np.zeros(1, np.bool_)
    want_qv, want_n, want_windows = reference(
        np.where(np.isfinite(raw), raw, 0.0), close, started, 7
    )
    for cuts in ([], list(range(0, n_min, 3))):  # long walks, then walks of 3 minutes
        w = Windows(1, 7, started)
        got_qv, got_n = w.walk(raw, close, cuts, 2)
        asked = np.arange(n_min) % 2 == 0
        assert np.array_equal(got_qv[:, asked], want_qv[:, asked])
        assert np.array_equal(got_n[:, asked], want_n[:, asked])
        assert w.sorted_windows() == want_windows


def test_huge_volumes_are_summed_afresh_and_exact_again_once_gone() -> None:
    """Volumes so large that a window's sum passes 2**53 (no stock trades that, but the
    store allows it) cannot be summed exactly as they come and go: the figure stays within
    rounding of the exact mean while they are in the window, without drift after them, and
    is exact once they have left."""
    rng = np.random.default_rng(13)
    n_min, window = 1_200, 40
    volume = rng.integers(1, 10, (1, n_min)).astype(np.float64)
    volume[0, 300:340] = rng.integers(2**50, 2**53, 40).astype(np.float64)
    close = np.ones_like(volume)
    w = Windows(1, window, np.zeros(1, np.bool_))
    got_qv, _ = w.walk(volume, close, [700], 5)
    seen = volume[0].tolist()
    for m in range(0, n_min, 5):
        last = sorted(seen[max(0, m + 1 - window) : m + 1])
        k = len(last) // 2
        exact = sum(Fraction(v) for v in last[:k]) / k if k else Fraction(0)
        if m >= 340 + window:  # the huge ones have left
            assert got_qv[0, m] == float(exact), m
        else:
            assert abs(Fraction(got_qv[0, m]) - exact) <= abs(exact) * Fraction(1, 10**12), m


def test_trends_and_regime_shifts_stay_exact() -> None:
    """Volumes that walk the k-th smallest out of its band every few minutes (steady trends
    up and down, a step up and back, a spike): 390-minute window, exact at every minute."""
    n_min = 3_000
    t = np.arange(n_min, dtype=np.float64)
    rng = np.random.default_rng(7)
    step = np.where((t > 800) & (t < 1_900), 5_000_000.0, 100.0) + rng.integers(0, 50, n_min)
    spike = rng.integers(0, 10**9, n_min).astype(np.float64)
    spike[1_000:1_020] = 9.0e15  # near 2**53: sums of the lower half stay below it
    volume = np.vstack([1_000.0 + 7 * t, 1e9 - 13 * t, step, spike, np.full(n_min, 42.0)])
    close = np.ones_like(volume)
    started = np.zeros(volume.shape[0], np.bool_)
    want_qv, want_n, _ = reference(volume, close, started, 390)
    w = Windows(volume.shape[0], 390, started)
    got_qv, got_n = w.walk(volume, close, [500, 1_500, 1_501, 2_900])
    assert np.array_equal(got_n, want_n)
    assert np.array_equal(got_qv, want_qv)


def test_fractional_volumes_stay_within_rounding_and_whole_ones_exact_again() -> None:
    """A CSV import may give volumes that are not whole numbers: the figure stays within
    1e-12 (relative) of the exact mean, with no drift over thousands of minutes; once the
    window holds whole numbers only again, it is exact again."""
    rng = np.random.default_rng(11)
    n_min, window = 4_000, 390
    volume = rng.integers(0, 10_000, (1, n_min)).astype(np.float64)
    volume[0, :2_000] += rng.random(2_000)  # fractional first, then whole numbers only
    close = np.ones_like(volume)
    started = np.zeros(1, np.bool_)
    w = Windows(1, window, started)
    got_qv, got_n = w.walk(volume, close, [1_000, 2_500])
    seen = volume[0].tolist()
    for m in range(n_min):
        last = sorted(seen[max(0, m + 1 - window) : m + 1])
        k = len(last) // 2
        exact = sum(Fraction(v) for v in last[:k]) / k if k else Fraction(0)
        if m >= 2_000 + window:  # whole numbers only
            assert got_qv[0, m] == float(exact)
        else:
            assert abs(Fraction(got_qv[0, m]) - exact) <= abs(exact) * Fraction(1, 10**12)
    assert got_n[0, -1] == window


def test_the_live_minute_is_the_pass_minute_by_minute() -> None:
    """Paper and live trading step quiet_volume_minute once a minute: the same figures and
    the same window state as the backtest's pass over the same minutes."""
    rng = np.random.default_rng(3)
    n_sym, n_min, window = 4, 900, 390
    raw = rng.integers(0, 5_000, (n_sym, n_min))
    gaps = rng.random((n_sym, n_min)) < 0.2
    gaps[2, :500] = True  # starts late
    volume, close = series(raw, gaps)
    started = np.array([False, True, False, False])
    whole = Windows(n_sym, window, started)
    want_qv, want_n = whole.walk(volume, close, [])
    live = Windows(n_sym, window, started)
    qv = np.zeros(n_sym)
    nn = np.zeros(n_sym, np.int64)
    for m in range(n_min):
        alloc = m % 5 == 0
        quiet_volume_minute(
            np.ascontiguousarray(volume[:, m]), np.ascontiguousarray(close[:, m]), alloc,
            live.ring, live.srt, live.count, live.head, live.started, window, qv, nn,
        )  # fmt: skip
        if alloc:
            assert np.array_equal(qv, want_qv[:, m])
            assert np.array_equal(nn, want_n[:, m])
    for name in ("ring", "srt", "count", "head", "started"):
        assert np.array_equal(getattr(live, name), getattr(whole, name)), name

"""Thinning of long series for drawing only: what is computed always uses every minute."""

from __future__ import annotations

import math

import numpy as np


def minmax_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points to draw so a line of ``values`` keeps its peaks and troughs.

    The series is cut into ``max_points // 2`` equal buckets and each keeps the positions
    of its lowest and highest value (in time order), so a drawn drawdown is never shallower
    than the real one. A bucket with no value at all keeps its first position (a NaN), so
    gaps stay visible. Series no longer than ``max_points`` are kept whole.
    """
    n = int(values.size)
    if n <= max_points or max_points < 4:
        return np.arange(n, dtype=np.int64)
    width = math.ceil(n / (max_points // 2))
    buckets = math.ceil(n / width)
    padded = np.full(buckets * width, np.nan)
    padded[:n] = values
    rows = padded.reshape(buckets, width)
    empty = np.all(np.isnan(rows), axis=1)
    low = np.argmin(np.where(np.isnan(rows), np.inf, rows), axis=1)
    high = np.argmax(np.where(np.isnan(rows), -np.inf, rows), axis=1)
    base = np.arange(buckets, dtype=np.int64) * width
    low = np.where(empty, 0, low) + base
    high = np.where(empty, 0, high) + base
    keep = np.unique(np.concatenate((low, high, [0, n - 1])))
    return keep[keep < n].astype(np.int64)


def bucket_bounds(n: int, max_points: int) -> np.ndarray:
    """Start positions of at most ``max_points`` equal buckets over ``n`` points, plus ``n``."""
    if n <= 0:
        return np.zeros(1, dtype=np.int64)
    width = max(1, math.ceil(n / max(max_points, 1)))
    return np.append(np.arange(0, n, width, dtype=np.int64), n)


def bucket_means(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (NaN counted as 0) over each bucket [bounds[i], bounds[i + 1])."""
    clean = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
    sums = np.add.reduceat(clean, bounds[:-1]) if clean.size else np.zeros(0)
    return np.asarray(sums / np.diff(bounds), dtype=float)


def step_changes(values: np.ndarray) -> np.ndarray:
    """Indices where a step series changes (plus its first and last point)."""
    n = int(values.size)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    same = np.isclose(values[1:], values[:-1], equal_nan=True, rtol=0.0, atol=0.0)
    keep = np.concatenate(([0], np.flatnonzero(~same) + 1, [n - 1]))
    return np.unique(keep).astype(np.int64)


def step_points(values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices to draw a step series with: its change points, or when it changes more
    often than ``max_points``, the lows and highs of :func:`minmax_indices`."""
    changes = step_changes(values)
    if changes.size <= max_points:
        return changes
    return minmax_indices(values, max_points)

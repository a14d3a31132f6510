"""Fixtures of the data tests: the shared real minute sets and small hand-made bar frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.data.store import BarStore


@pytest.fixture(scope="session")
def shared_data(shared_market_data: Path) -> Path:
    """../shared/data next to the repo (real market data, never copied into the repo)."""
    return shared_market_data


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "store")


def make_bars(n: int = 10, start: str = "2024-01-02 14:30", seed: int = 1) -> pd.DataFrame:
    """n consistent 1-minute bars from `start` (UTC), in the store's write schema."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 + np.cumsum(rng.normal(0.0, 0.05, n)), 2)
    open_ = np.round(np.r_[100.0, close[:-1]], 2)
    high = np.maximum(open_, close) + 0.02
    low = np.minimum(open_, close) - 0.02
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq="min", tz="UTC").as_unit("ns"),
            "open": open_,
            "high": np.round(high, 2),
            "low": np.round(low, 2),
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype(np.int64),
        }
    )


def file_state(path: Path) -> tuple[bytes, int]:
    """Bytes and mtime of a file, to prove it was not touched."""
    return path.read_bytes(), path.stat().st_mtime_ns

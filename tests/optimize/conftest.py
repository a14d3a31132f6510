"""Fixtures of the sweep tests: small bar stores built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic
from tests.optimize.bars import noise_store, regime_store

START, END = "2024-01-04", "2024-01-19"  # 11 sessions after two of warm-up


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """4 synthetic symbols x 14 sessions from 2024-01-02."""
    root = tmp_path_factory.mktemp("synthetic") / "store"
    symbols = default_symbols(4)
    write_synthetic(BarStore(root), symbols, "2024-01-02", 14, seed=11)
    return root, symbols


@pytest.fixture(scope="session")
def regimes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """2 warm-up + 6 sessions of regime A (step 0.5 wins), then 8 of regime B (step 2 wins)."""
    root = tmp_path_factory.mktemp("regimes") / "store"
    _, symbols = regime_store(root, "2024-01-02", 8, 8)
    return root, symbols


@pytest.fixture(scope="session")
def noise(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("noise") / "store"
    _, symbols = noise_store(root, "2024-01-02", 24)
    return root, symbols

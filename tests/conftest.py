"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_market_data() -> Path:
    """../shared/data beside the repo: real market data, used in place, never copied."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared market data folder {SHARED_DATA.resolve()} is absent")
    return SHARED_DATA.resolve()

"""Walk-forward windows, the choice of the best parameters by the objective, and the
out-of-sample equity stitched from the test windows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import ConfigError
from momentumbot.optimize.fast import Window

OBJECTIVES = ("sharpe", "total_return", "calmar", "sortino")


@dataclass(frozen=True)
class WalkWindow:
    """One step of a walk-forward: TRAIN sessions to choose, the next TEST to evaluate.
    The last one (`test` None) is the live window: the latest TRAIN sessions, whose choice
    is the config to trade next."""

    index: int
    train: Window
    test: Window | None


def parse_walk_forward(text: str) -> tuple[int, int]:
    """`TRAIN,TEST` in sessions."""
    parts = [p.strip() for p in text.split(",")]
    try:
        train, test = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"--walk-forward {text}: expected TRAIN,TEST in sessions, e.g. 40,10"
        ) from None
    if train < 2 or test < 1:
        raise ConfigError(
            f"--walk-forward {text}: TRAIN needs at least 2 sessions (a Sharpe ratio) and TEST at least 1"
        )
    return train, test


def walk_windows(sessions: pd.DatetimeIndex, train: int, test: int) -> list[WalkWindow]:
    """Rolling windows stepping by TEST; the last test window may be shorter. Then the live
    window: the last TRAIN sessions."""
    n = len(sessions)
    if train + test > n:
        raise ConfigError(
            f"--walk-forward {train},{test}: needs at least {train + test} sessions, "
            f"the range has {n}"
        )

    def day(i: int) -> str:
        return f"{sessions[i]:%Y-%m-%d}"

    out: list[WalkWindow] = []
    first = 0
    while first + train < n:
        t_end = min(first + train + test, n)
        out.append(
            WalkWindow(
                len(out),
                Window(day(first), day(first + train - 1)),
                Window(day(first + train), day(t_end - 1)),
            )
        )
        first += test
    out.append(WalkWindow(len(out), Window(day(n - train), day(n - 1)), None))
    return out


def objective_value(value: Any) -> float:
    """A figure as a number to maximise (a missing one loses to any number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return -math.inf
    return number if math.isfinite(number) else -math.inf


def best_row(rows: pd.DataFrame, objective: str, order: Sequence[str]) -> pd.Series:
    """The row with the highest objective; ties go to the earliest parameter set in the
    sweep's order (`order`: parameter keys), so the choice never depends on which run
    finished first."""
    if rows.empty:
        raise ValueError("no results to choose from")
    rank = {k: i for i, k in enumerate(order)}
    values = rows[objective].map(objective_value).to_numpy()
    position = rows["params_key"].map(lambda k: rank.get(k, len(rank))).to_numpy()
    best = sorted(range(len(rows)), key=lambda i: (-values[i], position[i]))[0]
    return rows.iloc[best]


def stitch_equity(parts: Sequence[pd.DataFrame], start_equity: float) -> pd.DataFrame:
    """One out-of-sample curve from test windows that each started with `start_equity`:
    every window's curve scaled so it starts where the previous one ended."""
    frames = []
    level = 1.0
    for eq in parts:
        scale = level
        frame = pd.DataFrame(
            {
                "time": eq["time"].astype(str),
                "cash": eq["cash"].to_numpy(float) * scale,
                "positions_value": eq["positions_value"].to_numpy(float) * scale,
                "equity": eq["equity"].to_numpy(float) * scale,
            }
        )
        frames.append(frame)
        if len(eq):
            level = scale * float(eq["equity"].iloc[-1]) / start_equity
    if not frames:
        return pd.DataFrame(columns=["time", "cash", "positions_value", "equity"])
    return pd.concat(frames, ignore_index=True)


def read_equity(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "equity.csv")


def stitched_fills(run_dirs: Sequence[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(d / "fills.csv") for d in run_dirs]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.read_csv(run_dirs[0] / "fills.csv") if run_dirs else pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["fill_id"] = np.arange(len(out))
    return out

"""What a sweep was asked (SweepSpec), what it will run (SweepPlan), what it gave
(SweepOutcome), and the best.toml it writes: shared by the sweep and its report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from momentumbot import __version__
from momentumbot.config.loader import config_to_toml
from momentumbot.config.schema import AppConfig
from momentumbot.optimize.fast import Window
from momentumbot.optimize.space import ParamSet, ParamSpec, params_key
from momentumbot.optimize.walkforward import WalkWindow


@dataclass(frozen=True)
class SweepSpec:
    """Everything `momentumbot optimize` was asked, checked."""

    base: AppConfig
    store: Path
    symbols: list[str]
    start: str
    end: str
    specs: list[ParamSpec]
    out: Path
    method: str = "grid"
    trials: int | None = None
    seed: int = 0
    objective: str = "sharpe"
    walk_forward: tuple[int, int] | None = None
    workers: int | None = None
    scheduler: str | None = None
    report: bool = True


@dataclass
class SweepPlan:
    spec: SweepSpec
    param_sets: list[ParamSet]
    windows: list[WalkWindow]  # walk-forward windows (empty for a plain sweep)
    span: Window  # the whole range
    sessions: pd.DatetimeIndex

    @property
    def order(self) -> list[str]:
        return [params_key(p) for p in self.param_sets]


@dataclass
class SweepOutcome:
    out: Path
    results: pd.DataFrame
    best: pd.Series | None
    best_config: Path | None
    summary_html: Path | None
    ran: int
    skipped: int
    failed: int
    seconds: float
    runner: str
    extras: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds by stage


def best_config_text(cfg: AppConfig, store: Path, note: Sequence[str]) -> str:
    """best.toml: the whole config (symbols and store included), ready for `backtest`
    and `trade`. Secrets are never written (the environment supplies them)."""
    data = cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"store": str(store.resolve())})}
    )
    text = config_to_toml(data)
    text = "\n".join(
        line for line in text.splitlines() if not line.startswith("alphavantage_api_key")
    )
    header = "".join(f"# {line}\n" for line in note)
    return f"# written by momentumbot {__version__} optimize\n{header}{text}\n"

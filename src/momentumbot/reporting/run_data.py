"""A run folder read back for the report: its tables, figures, config and plain notices.

Figures are never computed here: they come from summary.json (written from
:mod:`momentumbot.reporting.metrics`) or, when a folder has none, from
:func:`metrics.compute_figures` itself.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from momentumbot.domain.errors import DataError, MomentumbotError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_MINUTE
from momentumbot.reporting.metrics import compute_figures, pnl_by_symbol, round_trips

if TYPE_CHECKING:
    from momentumbot.config.schema import AppConfig

# The config's loader and the run folder's readers (which import the engine and numba) are
# imported where a folder is read, so a process that only draws a RunData it was given
# (reporting.chart_worker) does without them.

_NS_PER_MINUTE_TD = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class MinuteAxis:
    """The run's regular-session minutes in order: the x axis every chart shares.

    ``label_ns[i]`` is the bar START of minute i (UTC ns); equity row i is that bar's close.
    Charts place minute i at x = i so nights, weekends and holidays take no room.
    """

    label_ns: np.ndarray  # int64 UTC ns, one per minute
    session: np.ndarray  # int64 index into session_dates, one per minute
    session_dates: tuple[pd.Timestamp, ...]  # New York dates (naive midnight)
    session_start: np.ndarray  # int64 index of each session's first minute

    @property
    def n_minutes(self) -> int:
        return int(self.label_ns.size)

    @property
    def n_sessions(self) -> int:
        return len(self.session_dates)

    def wall_minutes(self, index: np.ndarray | None = None) -> np.ndarray:
        """New York wall-clock minutes since 1970 of minutes ``index`` (all by default).

        Charts that need real dates (the interactive ones) read these as if they were UTC,
        which shows New York time on screen whatever the viewer's time zone.
        """
        wall = self._wall
        return wall if index is None else wall[index]

    @cached_property
    def _wall(self) -> np.ndarray:
        if self.label_ns.size == 0:
            return np.empty(0, dtype=np.int64)
        local = pd.DatetimeIndex(self.label_ns.astype("datetime64[ns]")).tz_localize("UTC")
        wall = local.tz_convert(EXCHANGE_TZ).tz_localize(None)
        return np.asarray(wall.asi8 // NS_PER_MINUTE, dtype=np.int64)

    def index_of_labels(self, ns: np.ndarray) -> np.ndarray:
        """Minute index of each bar-start label; -1 where a label is not on the axis."""
        if self.label_ns.size == 0:
            return np.full(ns.shape, -1, dtype=np.int64)
        idx = np.searchsorted(self.label_ns, ns)
        clipped = np.minimum(idx, self.label_ns.size - 1)
        return np.where(self.label_ns[clipped] == ns, clipped, -1).astype(np.int64)

    @classmethod
    def from_closes(cls, closes: pd.Series | pd.DatetimeIndex) -> MinuteAxis:
        """The axis of an equity table, from its bar-close times."""
        times = pd.DatetimeIndex(pd.to_datetime(closes, utc=True)).as_unit("ns")
        starts = times - _NS_PER_MINUTE_TD
        label_ns = np.asarray(starts.asi8, dtype=np.int64)
        dates = np.asarray(
            starts.tz_convert(EXCHANGE_TZ).tz_localize(None).values.astype("datetime64[D]")
        )
        if dates.size == 0:
            empty = np.empty(0, dtype=np.int64)
            return cls(label_ns, empty, (), empty)
        change = np.flatnonzero(dates[1:] != dates[:-1]) + 1
        session_start = np.concatenate(([0], change)).astype(np.int64)
        session = np.cumsum(np.isin(np.arange(dates.size), change)).astype(np.int64)
        session_dates = tuple(pd.Timestamp(d) for d in dates[session_start])
        return cls(label_ns, session, session_dates, session_start)


@dataclass
class RunData:
    """Everything the plots and the HTML report draw, read once from a run folder."""

    run_dir: Path
    kind: str
    summary: dict[str, Any]
    figures: dict[str, Any]
    benchmark_figures: dict[str, Any] | None
    config: AppConfig | None
    config_text: str
    equity: pd.DataFrame
    benchmark: pd.DataFrame | None
    fills: pd.DataFrame
    trips: pd.DataFrame
    pnl: pd.DataFrame
    axis: MinuteAxis
    symbols: list[str]
    start_equity: float
    store: Path | None
    notices: list[str] = field(default_factory=list)

    @property
    def traded_symbols(self) -> list[str]:
        """Symbols with at least one fill, in the run's symbol order."""
        traded = {str(s) for s in pd.unique(self.fills["symbol"])} if len(self.fills) else set()
        ordered = [s for s in self.symbols if s in traded]
        return ordered + sorted(traded - set(ordered))


def _read_summary(run_dir: Path, notices: list[str]) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        notices.append("summary.json is missing: the figures were computed from equity.csv.")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notices.append(f"summary.json could not be read ({exc}): figures recomputed.")
        return {}
    return data if isinstance(data, dict) else {}


_SECRET_LINE = re.compile(
    r'^(\s*"?[\w.-]*(?:api_key|apikey|secret|password|token)[\w.-]*"?\s*=\s*)(?!""\s*$)(\S.*)$',
    re.IGNORECASE | re.MULTILINE,
)


def redact_secrets(config_text: str) -> str:
    """The config as shown in reports: values of keys that look like secrets (API keys,
    passwords, tokens) replaced by "***" so a shared report never carries them."""
    return _SECRET_LINE.sub(lambda m: f'{m.group(1)}"***"', config_text)


def _read_config(run_dir: Path, notices: list[str]) -> tuple[AppConfig | None, str]:
    path = run_dir / "config.toml"
    if not path.is_file():
        notices.append("config.toml is missing: the band level cannot be drawn.")
        return None, ""
    text = path.read_text(encoding="utf-8")
    from momentumbot.config.loader import parse_config

    try:
        return parse_config(tomllib.loads(text), str(path)), redact_secrets(text)
    except (tomllib.TOMLDecodeError, MomentumbotError) as exc:
        notices.append(f"config.toml could not be read ({exc}): the band level is not drawn.")
        return None, redact_secrets(text)


def _optional_table(run_dir: Path, name: str) -> pd.DataFrame | None:
    from momentumbot.reporting.run_folder import read_table

    if not (run_dir / name).is_file():
        return None
    return read_table(run_dir, name)


def _read_trips(run_dir: Path, fills: pd.DataFrame) -> pd.DataFrame:
    path = run_dir / "round_trips.csv"
    if path.is_file():
        trips = pd.read_csv(path)
        if "entry_time" in trips.columns and "exit_time" in trips.columns:
            for col in ("entry_time", "exit_time"):
                trips[col] = pd.to_datetime(trips[col], utc=True, format="ISO8601")
            return trips
    return round_trips(fills)


def _read_pnl(run_dir: Path, fills: pd.DataFrame, notices: list[str]) -> pd.DataFrame:
    path = run_dir / "pnl_by_symbol.csv"
    if path.is_file():
        return pd.read_csv(path)
    if not len(fills):
        return pnl_by_symbol(fills, {}, {})
    signed = np.where(fills["side"].astype(str) == "BUY", 1, -1) * fills["quantity"].to_numpy()
    net = pd.Series(signed).groupby(fills["symbol"].astype(str).to_numpy()).sum()
    last = fills.groupby(fills["symbol"].astype(str))["price"].last()
    notices.append(
        "pnl_by_symbol.csv is missing: open positions are marked at their last fill price."
    )
    prices = {str(k): float(v) for k, v in last.items()}
    return pnl_by_symbol(fills, {str(k): int(v) for k, v in net.items()}, prices)


def _start_equity(summary: Mapping[str, Any], config: AppConfig | None) -> float:
    value = summary.get("start_equity")
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    if config is not None:
        return float(config.portfolio.initial_cash)
    return 100_000.0


def _store_path(summary: Mapping[str, Any], config: AppConfig | None) -> Path | None:
    run = summary.get("run")
    if isinstance(run, Mapping) and run.get("store"):
        return Path(str(run["store"]))
    if config is not None and not summary:
        return Path(config.data.store)
    return None


def load_run(run_dir: Path) -> RunData:
    """Read a run folder. Raises DataError only when it is not a run folder at all."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such folder; give a run folder written by a backtest")
    if not (run_dir / "equity.csv").is_file():
        raise DataError(f"{run_dir}: no equity.csv here; is it a momentumbot run folder?")
    from momentumbot.reporting.run_folder import FILLS_COLUMNS, read_table

    notices: list[str] = []
    summary = _read_summary(run_dir, notices)
    config, config_text = _read_config(run_dir, notices)
    equity = read_table(run_dir, "equity.csv")
    fills = _optional_table(run_dir, "fills.csv")
    if fills is None:
        notices.append("fills.csv is missing: the run is shown without trades.")
        fills = pd.DataFrame({c: pd.Series(dtype=object) for c in FILLS_COLUMNS})
    benchmark = _optional_table(run_dir, "benchmark.csv")
    start_equity = _start_equity(summary, config)

    figures = {k: v for k, v in summary.items() if k not in ("benchmark", "run")}
    if not figures:
        figures = dict(compute_figures(equity, fills, start_equity=start_equity))
    bench = summary.get("benchmark")
    benchmark_figures: dict[str, Any] | None = dict(bench) if isinstance(bench, dict) else None
    if benchmark_figures is None and benchmark is not None and len(benchmark):
        no_fills = fills.iloc[0:0]
        benchmark_figures = dict(compute_figures(benchmark, no_fills, start_equity=start_equity))

    run_info = summary.get("run")
    run: dict[str, Any] = run_info if isinstance(run_info, dict) else {}
    symbols = [str(s) for s in run.get("symbols", [])]
    if not symbols and config is not None:
        symbols = list(config.symbols)
    if not symbols and len(fills):
        symbols = sorted(set(fills["symbol"].astype(str)))
    for note in run.get("notes", []) or []:
        notices.append(str(note))

    return RunData(
        run_dir=run_dir,
        kind=str(run.get("kind", "run")),
        summary=summary,
        figures=figures,
        benchmark_figures=benchmark_figures,
        config=config,
        config_text=config_text,
        equity=equity,
        benchmark=benchmark,
        fills=fills,
        trips=_read_trips(run_dir, fills),
        pnl=_read_pnl(run_dir, fills, notices),
        axis=MinuteAxis.from_closes(equity["time"]),
        symbols=symbols,
        start_equity=start_equity,
        store=_store_path(summary, config),
        notices=notices,
    )

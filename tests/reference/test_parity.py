"""The engine against the plain reference implementation of STRATEGY.md: same orders, same
fills, same equity, on hand-built scenarios and on random ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import NS_PER_MINUTE, TradingCalendar
from momentumbot.engine.backtest import run_backtest
from momentumbot.testing import MemoryBarSource
from tests.reference.reference_engine import RefResult, run_reference

CAL = TradingCalendar("XNYS")
ORDER_COLS = [
    "order_id",
    "decided_at",
    "symbol",
    "side",
    "quantity",
    "reason",
    "status",
    "filled_quantity",
]
FILL_KEYS = ["order_id", "time", "symbol", "side", "quantity"]


# ----------------------------------------------------------------------------- building bars


def minute_ns(session: str, minute: int) -> int:
    """The UTC ns label of regular minute `minute` (0 = the open) of `session`."""
    g = CAL.grid(CAL.sessions(session, session))
    return int(g.open_ns[0]) + minute * NS_PER_MINUTE


def frame(rows: list[tuple[int, float, float, float]]) -> pd.DataFrame:
    """Bars from (label_ns, open, close, volume) rows."""
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    o = np.array([r[1] for r in rows], dtype=float)
    c = np.array([r[2] for r in rows], dtype=float)
    return pd.DataFrame(
        {
            "ts": ts,
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": np.array([r[3] for r in rows], dtype=float),
        }
    )


def flat_session(session: str, price: float, volume: float, minutes: range | None = None) -> list:
    """Bars at one price all session (or over `minutes`)."""
    n = CAL.grid(CAL.sessions(session, session)).n_minutes
    return [(minute_ns(session, m), price, price, volume) for m in (minutes or range(n))]


def config(symbols: list[str], **sections: dict[str, Any]) -> AppConfig:
    return AppConfig(symbols=symbols, **sections)


# ----------------------------------------------------------------------------- comparing


def run_both(
    cfg: AppConfig, frames: dict[str, pd.DataFrame], start: str, end: str
) -> tuple[Any, RefResult]:
    res = run_backtest(cfg, MemoryBarSource(frames), start=start, end=end)
    ref = run_reference(cfg, frames, start, end)
    return res, ref


def _records(df: pd.DataFrame) -> list[tuple]:
    """Rows as plain Python values (ints, strs), whatever the frame's dtypes."""
    return [
        tuple(v.item() if isinstance(v, np.generic) else v for v in row)
        for row in df.itertuples(index=False)
    ]


def _first_difference(a: pd.DataFrame, b: pd.DataFrame, label: str) -> str | None:
    ra_all, rb_all = _records(a), _records(b)
    n = max(len(ra_all), len(rb_all))
    for r in range(n):
        ra = ra_all[r] if r < len(ra_all) else None
        rb = rb_all[r] if r < len(rb_all) else None
        if ra != rb:
            lo = max(0, r - 3)
            return (
                f"{label}: first difference at row {r}\n"
                f"engine:\n{a.iloc[lo : r + 4].to_string()}\n"
                f"reference:\n{b.iloc[lo : r + 4].to_string()}"
            )
    return None


def assert_same(res: Any, ref: RefResult) -> None:
    eo = res.orders[ORDER_COLS].reset_index(drop=True)
    ro = ref.orders[ORDER_COLS].reset_index(drop=True)
    diff = _first_difference(eo, ro, "orders")
    if diff:
        raise AssertionError(diff)

    ef = res.fills.reset_index(drop=True)
    rf = ref.fills.reset_index(drop=True)
    diff = _first_difference(ef[FILL_KEYS], rf[FILL_KEYS], "fills")
    if diff:
        raise AssertionError(diff)
    if len(ef):
        dp = np.abs(ef["price"].to_numpy(float) - rf["price"].to_numpy(float))
        dc = np.abs(ef["commission"].to_numpy(float) - rf["commission"].to_numpy(float))
        bad = np.flatnonzero((dp > 1e-9) | (dc > 1e-6 + 1e-9))
        if bad.size:
            r = int(bad[0])
            raise AssertionError(
                f"fill {r}: engine price {ef['price'][r]!r} commission {ef['commission'][r]!r}, "
                f"reference price {rf['price'][r]!r} commission {rf['commission'][r]!r}\n"
                f"{ef.iloc[max(0, r - 2) : r + 3].to_string()}"
            )

    ee = res.equity.reset_index(drop=True)
    re_ = ref.equity.reset_index(drop=True)
    assert list(ee["time"]) == list(re_["time"]), "equity times differ"
    de = np.abs(ee["equity"].to_numpy(float) - re_["equity"].to_numpy(float))
    bad = np.flatnonzero(de > 1e-6 + 1e-9)
    if bad.size:
        r = int(bad[0])
        raise AssertionError(
            f"equity at {ee['time'][r]}: engine {ee['equity'][r]!r} "
            f"(cash {ee['cash'][r]!r}), reference {re_['equity'][r]!r} (cash {re_['cash'][r]!r})"
        )
    assert res.overnight_carries == ref.overnight_carries, (
        f"overnight carries: engine {res.overnight_carries}, reference {ref.overnight_carries}"
    )


def check(cfg: AppConfig, frames: dict[str, pd.DataFrame], start: str, end: str) -> RefResult:
    res, ref = run_both(cfg, frames, start, end)
    assert_same(res, ref)
    return ref


# ----------------------------------------------------------------------------- random scenarios

RUNS = [  # (first data session, run start, run end)
    ("2024-03-01", "2024-03-04", "2024-03-06"),
    ("2024-02-28", "2024-02-29", "2024-03-01"),  # a month boundary (tiered month volume)
    ("2024-07-01", "2024-07-02", "2024-07-05"),  # 07-03 is a half day, 07-04 a holiday
    ("2023-11-21", "2023-11-22", "2023-11-27"),  # 11-24 is a half day
]


def random_frames(
    symbols: list[str],
    first: str,
    end: str,
    seed: int,
    *,
    small_volume: float,
    gaps: float,
    vol: float,
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    grid = CAL.grid(CAL.sessions(first, end))
    frames: dict[str, pd.DataFrame] = {}
    for sym in symbols:
        n = grid.n_minutes
        price0 = float(rng.choice([3.0, 12.0, 45.0, 140.0]))
        # a random walk with runs of momentum, so the band moves over several rungs
        drift = np.repeat(rng.normal(0, vol / 3, n // 30 + 1), 30)[:n]
        steps = rng.normal(drift, vol, n)
        close = np.round(price0 * np.exp(np.cumsum(steps)), 2)
        open_ = np.round(np.r_[price0, close[:-1]] * np.exp(rng.normal(0, vol / 4, n)), 2)
        open_ = np.maximum(open_, 0.01)
        close = np.maximum(close, 0.01)
        big = rng.integers(50, 20_000, n)
        small = rng.integers(0, 40, n)
        volume = np.where(rng.random(n) < small_volume, small, big).astype(float)
        keep = rng.random(n) >= gaps
        # some symbols start late (their quiet-volume history counts from their first bar)
        start_at = int(rng.choice([0, 0, int(rng.integers(0, n // 2))]))
        keep[:start_at] = False
        ts = grid.label_ns[keep]
        rows = list(zip(ts, open_[keep], close[keep], volume[keep], strict=True))
        if not rows:
            rows = [(int(grid.label_ns[-1]), price0, price0, 100.0)]
        frames[sym] = frame(rows)
    return frames


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AppConfig, dict[str, pd.DataFrame], str, str]:
    n_sym = draw(st.integers(2, 4))
    symbols = ["AAA", "BBB", "CCC", "DDD"][:n_sym]
    first, start, end = draw(st.sampled_from(RUNS))
    seed = draw(st.integers(0, 2**31 - 1))
    frames = random_frames(
        symbols,
        first,
        end,
        seed,
        small_volume=draw(st.sampled_from([0.0, 0.2, 0.6])),
        gaps=draw(st.sampled_from([0.0, 0.1, 0.4])),
        vol=draw(st.sampled_from([0.001, 0.002, 0.004])),
    )
    commission = draw(st.sampled_from(["fixed", "fixed", "tiered"]))
    cfg = config(
        symbols,
        portfolio={
            "initial_cash": draw(st.sampled_from([800.0, 3_000.0, 20_000.0, 250_000.0])),
            "cash_reserve": draw(st.sampled_from([0.0, 100.0, 500.0])),
        },
        strategy={
            "step": draw(st.sampled_from([0.3, 0.5, 1.0])),
            "buffer": draw(st.sampled_from([0.0, 0.1, 0.3])),
            "shadow_notional": draw(st.sampled_from([1_000.0, 10_000.0])),
        },
        allocation={
            "rebalance_minutes": draw(st.sampled_from([1, 2, 5, 30])),
            "quiet_window_minutes": draw(st.sampled_from([20, 60, 390])),
            "min_history_bars": draw(st.sampled_from([2, 10, 30])),
            "min_quiet_volume": draw(st.sampled_from([0.0, 5.0, 200.0])),
            "scorer": draw(st.sampled_from(["seed", "return", "return_x_log_dollar_volume"])),
            "top_k": draw(st.sampled_from([0, 0, 1, 2])),
            "rebalance_tolerance": draw(st.sampled_from([0.0, 0.1, 0.5])),
        },
        execution={
            "commission": commission,
            "max_volume_participation": draw(st.sampled_from([0.1, 0.5, 1.0])),
            "max_commission_bps": draw(st.sampled_from([5.0, 50.0, 10_000.0])),
            "slippage_per_share": draw(st.sampled_from([0.0, 0.01])),
            "slippage_bps": draw(st.sampled_from([0.0, 1.0])),
        },
        session={
            "no_new_entries_minutes": draw(st.sampled_from([5, 15, 60])),
            "flatten_minutes": draw(st.sampled_from([1, 5, 10])),
        },
    )
    return cfg, frames, start, end


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_random_scenarios_agree(
    scenario: tuple[AppConfig, dict[str, pd.DataFrame], str, str],
) -> None:
    cfg, frames, start, end = scenario
    check(cfg, frames, start, end)


def _unused() -> None:  # keeps imports used while the file grows
    _ = (math, pytest)

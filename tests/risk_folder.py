"""Checks of a run folder against its [risk] limits, from the folder's own files and the bars:
what a user can verify without reading any code (used by the backtest and paper-trading tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.data.source import BarSource

NS_MIN = 60_000_000_000
NY = "America/New_York"


def decision_closes(source: BarSource, symbols: Sequence[str], times: pd.Series) -> pd.DataFrame:
    """The close of each symbol's latest bar at or before each decision time (a bar closes a
    minute after its label), as the engine knows it: rows are the times, columns symbols."""
    t = np.sort(pd.DatetimeIndex(pd.to_datetime(times, utc=True).unique()).as_unit("ns").asi8)
    out = {}
    for sym in symbols:
        bars = source.read_arrays(sym, int(t[0]) - 400 * NS_MIN, int(t[-1]))
        closes_at = bars.ts + NS_MIN
        i = np.searchsorted(closes_at, t, side="right") - 1
        out[sym] = np.where(i >= 0, bars.close[np.maximum(i, 0)], np.nan)
    return pd.DataFrame(out, index=pd.to_datetime(t, utc=True))


def positions_before(fills: pd.DataFrame, symbols: Sequence[str], t: pd.Timestamp) -> pd.Series:
    """Shares held just before the decision at bar close `t`: fills in bars labelled before it."""
    done = fills[fills.time < t]
    signed = np.where(done.side == "BUY", done.quantity, -done.quantity)
    return (
        pd.Series(signed, index=done.symbol.to_numpy())
        .groupby(level=0)
        .sum()
        .reindex(list(symbols), fill_value=0)
    )


def read_folder(run_dir: Path) -> dict[str, Any]:
    def table(name: str) -> pd.DataFrame:
        df = pd.read_csv(run_dir / name, keep_default_na=False, na_values=[""])
        for col in ("time", "decided_at"):
            if col in df.columns:
                df[col] = pd.to_datetime(df[col], utc=True)
        return df

    return {
        "orders": table("orders.csv"),
        "fills": table("fills.csv"),
        "equity": table("equity.csv"),
        "risk": table("risk.csv"),
        "summary": json.loads((run_dir / "summary.json").read_text()),
    }


def check_limits(
    run_dir: Path, source: BarSource, symbols: Sequence[str], limits: dict[str, float]
) -> dict[str, Any]:
    """Assert every limit held in the run folder; returns the folder's tables."""
    f = read_folder(run_dir)
    orders, fills, equity, risk = f["orders"], f["fills"], f["equity"], f["risk"]
    buys = orders[(orders.side == "BUY") & (orders.status != "skipped")]
    closes = decision_closes(source, symbols, pd.concat([orders.decided_at, fills.time]))
    pv = limits.get("max_position_value", 0.0)
    gross = limits.get("max_gross_exposure", 0.0)
    per_minute = int(limits.get("max_orders_per_minute", 0))
    for t, group in buys.groupby("decided_at"):
        held = positions_before(fills, symbols, t)
        px = closes.loc[t]
        for o in group.itertuples():
            if pv:  # the position, once this buy fills, valued at the decision close
                assert (held[o.symbol] + o.quantity) * px[o.symbol] <= pv + 1e-6, (t, o)
        if gross:  # every position plus this minute's buys, at the decision close
            total = float((held * px.fillna(0.0)).sum()) + float(
                (group.quantity.to_numpy() * px[group.symbol].to_numpy()).sum()
            )
            assert total <= gross + 1e-6, (t, total)
        if per_minute:
            assert len(group) <= per_minute, (t, len(group))
    if pv:
        _position_value_at_every_minute(fills, orders, closes, pv)
    if limits.get("max_daily_loss", 0.0):
        _daily_loss(orders, equity, risk, limits["max_daily_loss"])
    return f


def _position_value_at_every_minute(
    fills: pd.DataFrame, orders: pd.DataFrame, closes: pd.DataFrame, limit: float
) -> None:
    """At every minute each position, valued at the close its latest buy was decided at, is
    within the limit (valued at later closes it moves only with the price)."""
    decided = orders.set_index("order_id").decided_at
    for sym, f in fills.groupby("symbol"):
        held = np.cumsum(np.where(f.side == "BUY", f.quantity, -f.quantity))
        ref = np.nan
        for i, row in enumerate(f.itertuples()):
            if row.side == "BUY":
                ref = closes[sym].to_numpy()[closes.index.get_loc(decided[row.order_id])]
            assert held[i] * ref <= limit + 1e-6 or held[i] == 0, (sym, row.time, held[i], ref)


def _daily_loss(
    orders: pd.DataFrame, equity: pd.DataFrame, risk: pd.DataFrame, limit: float
) -> None:
    """A halt trips at the first bar close where equity is `limit` below the session's first,
    flattens then, and nothing else is decided in that session."""
    equity = equity.assign(day=equity.time.dt.tz_convert(NY).dt.date)
    halts = risk[risk.event == "halt"]
    for day, e in equity.groupby("day"):
        start = float(e.equity.iloc[0])
        breached = e[start - e.equity >= limit]
        mine = halts[halts.time.dt.tz_convert(NY).dt.date == day]
        if breached.empty:
            assert mine.empty, (day, mine)
            continue
        assert len(mine) == 1, (day, mine)
        t = breached.time.iloc[0]
        assert mine.time.iloc[0] == t, (day, mine.time.iloc[0], t)
        assert abs(float(mine.loss.iloc[0]) - (start - float(breached.equity.iloc[0]))) < 1e-6
        day_orders = orders[orders.decided_at.dt.tz_convert(NY).dt.date == day]
        later = day_orders[day_orders.decided_at > t]
        assert later.empty, later
        at = day_orders[day_orders.decided_at == t]
        assert set(at.reason) <= {"flatten"}, at

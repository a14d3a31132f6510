"""A report for each session, written after its close while the bot trades on: the session's
folder holds exactly that session's rows of the run's files, and the run's report to date is
refreshed before the run ends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd

from momentumbot.app.session_report import session_text
from tests.trade.fake_run import config, fake_run


def test_each_session_gets_its_report_and_the_run_report_is_refreshed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    seen: dict[str, bool] = {}

    async def body() -> None:
        async with fake_run(out, config(), sessions=2) as r:
            e = r.trader.engine
            assert e is not None
            while e.sessions_completed < 1:
                await r.step()
            await r.trader.reports.drain()
            seen["run report before the end"] = (out / "report.html").is_file()
            seen["summary before the end"] = (out / "summary.json").is_file()
            while e.sessions_completed < 2:
                await r.step()
            await asyncio.wait_for(r.task, 120)  # the last session's and the final report

    asyncio.run(body())
    assert seen == {"run report before the end": True, "summary before the end": True}
    days = sorted(p.name for p in (out / "sessions").iterdir())
    assert days == ["2024-01-03", "2024-01-04"]
    fills = pd.read_csv(out / "fills.csv")
    equity = pd.read_csv(out / "equity.csv")
    for day in days:
        folder = out / "sessions" / day
        for name in ("orders.csv", "fills.csv", "equity.csv", "summary.json", "report.html"):
            assert (folder / name).is_file(), f"{day}: {name}"
        day_fills = pd.read_csv(folder / "fills.csv")
        run_fills = fills[fills["time"].str.startswith(day)]
        assert len(day_fills) == len(run_fills) > 0
        assert list(day_fills["price"]) == list(run_fills["price"])
        day_eq = pd.read_csv(folder / "equity.csv")
        run_eq = equity[equity["time"].str.startswith(day)]
        assert list(day_eq["equity"]) == list(run_eq["equity"])
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["run"]["first_session"] == summary["run"]["last_session"] == day
        text = session_text(folder)
        assert f"equity {summary['final_equity']:,.2f} USD" in text and "report.html" in text
        assert (
            summary["final_equity"] == round(float(run_eq["equity"].iloc[-1]), 2)
            or abs(summary["final_equity"] - float(run_eq["equity"].iloc[-1])) < 0.01
        )


def test_the_session_summary_compares_with_a_backtest_of_the_session_when_bars_are_stored(
    tmp_path: Path,
) -> None:
    """With the session's bars in the bar store, the summary says what a backtest of the same
    session returned; on the in-memory broker (the backtest's fill model) the two agree."""
    from momentumbot.app.session_report import backtest_of_session
    from tests.trade.fake_run import SYMBOLS
    from tests.trade.harness import synthetic_store

    out = tmp_path / "run"
    store = tmp_path / "store"
    base = config()
    cfg = base.model_copy(update={"data": base.data.model_copy(update={"store": str(store)})})
    day = pd.Timestamp("2024-01-03")
    assert backtest_of_session(cfg, day) is None  # no store: nothing to compare with

    async def body() -> None:
        async with fake_run(out, cfg) as r:
            await r.run_to("16:01")

    asyncio.run(body())
    synthetic_store(store, SYMBOLS, "2024-01-02", 3, seed=5)  # the fake market's bars
    folder = out / "sessions" / "2024-01-03"
    live = json.loads((folder / "summary.json").read_text())["total_return"]
    bt = backtest_of_session(cfg, day)
    assert bt is not None and abs(bt - live) < 1e-9, (bt, live)
    assert "the backtest of the session" in session_text(folder, bt)
    assert backtest_of_session(cfg, pd.Timestamp("2024-01-10")) is None  # not in the store

"""Walk-forward: windows, stitching, and a choice that follows a change of regime."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.errors import ConfigError
from momentumbot.optimize.walkforward import stitch_equity, walk_windows


def test_windows_roll_by_the_test_length() -> None:
    sessions = TradingCalendar("XNYS").sessions("2024-01-02", "2024-01-31")[:11]
    windows = walk_windows(sessions, 4, 3)
    spans = [(w.train.start, w.train.end, w.test.start if w.test else None,
              w.test.end if w.test else None) for w in windows]  # fmt: skip
    day = [f"{s:%Y-%m-%d}" for s in sessions]
    assert spans == [
        (day[0], day[3], day[4], day[6]),
        (day[3], day[6], day[7], day[9]),
        (day[6], day[9], day[10], day[10]),  # the last test window is shorter
        (day[7], day[10], None, None),  # the live window: the latest TRAIN sessions
    ]
    with pytest.raises(ConfigError, match="needs at least 12 sessions"):
        walk_windows(sessions, 10, 2)


def test_stitching_chains_the_windows() -> None:
    a = pd.DataFrame({"time": ["t1", "t2"], "cash": [0.0, 0.0], "positions_value": [100.0, 110.0],
                      "equity": [100.0, 110.0]})  # fmt: skip
    b = pd.DataFrame({"time": ["t3", "t4"], "cash": [0.0, 0.0], "positions_value": [100.0, 90.0],
                      "equity": [100.0, 90.0]})  # fmt: skip
    out = stitch_equity([a, b], 100.0)
    assert out["equity"].tolist() == pytest.approx([100.0, 110.0, 110.0, 99.0], rel=1e-12)


def test_walk_forward_follows_the_regime_change(
    regimes: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """Regime A (sessions 3-8): a 0.5 % step wins; regime B (9-16): a 2 % step wins."""
    store, symbols = regimes
    sessions = TradingCalendar("XNYS").sessions("2024-01-02", None)[:16]
    out = tmp_path / "wf"
    code = main(["optimize", "--store", str(store), "--symbols", ",".join(symbols),
                 "--start", f"{sessions[2]:%Y-%m-%d}", "--end", f"{sessions[15]:%Y-%m-%d}",
                 "--param", "step=0.5,1.0,2.0", "--walk-forward", "4,2", "--out", str(out),
                 "--workers", "1", "--objective", "total_return"])  # fmt: skip
    assert code == 0
    windows = pd.read_csv(out / "walk_forward" / "windows.csv")
    assert len(windows) == 5
    steps = windows["param_step"].tolist()
    assert steps[0] == 0.5  # trained on regime A only
    assert steps[-1] == 2.0  # trained on regime B only
    assert windows["oos_total_return"].iloc[0] > 0 and windows["oos_total_return"].iloc[-1] > 0
    assert tomllib.loads((out / "best.toml").read_text())["strategy"]["step"] == 2.0
    # the stitched out-of-sample curve covers every test session
    oos = pd.read_csv(out / "walk_forward" / "oos_equity.csv")
    tests = [pd.read_csv(out / "walk_forward" / f"window-{i:03d}" / "equity.csv") for i in range(5)]
    assert len(oos) == sum(len(t) for t in tests)
    summary = json.loads((out / "walk_forward" / "summary.json").read_text())
    assert summary["windows"] == 5 and summary["distinct_choices"] >= 2
    assert summary["out_of_sample"]["sessions"] == 10
    html = (out / "summary.html").read_text()
    assert 'id="walk-forward"' in html and "oos-chart" in html
    # a rerun finds everything done, test windows included
    results = pd.read_csv(out / "results.csv")
    assert set(results["phase"]) == {"train", "test"}
    assert len(results) == 6 * 3 + 5
    assert main(["optimize", "--store", str(store), "--symbols", ",".join(symbols),
                 "--start", f"{sessions[2]:%Y-%m-%d}", "--end", f"{sessions[15]:%Y-%m-%d}",
                 "--param", "step=0.5,1.0,2.0", "--walk-forward", "4,2", "--out", str(out),
                 "--workers", "1", "--objective", "total_return"]) == 0  # fmt: skip
    assert len(pd.read_csv(out / "results.csv")) == len(results)

"""The overfitting statistics: luck is called luck, an edge is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from momentumbot.cli import main
from momentumbot.optimize.overfit import expected_max_sharpe, overfitting, pbo_cscv


def test_pure_noise_trials_are_called_overfit() -> None:
    rng = np.random.default_rng(5)
    stats = overfitting(rng.normal(0.0, 0.01, (120, 40)))
    assert stats.pbo is not None and 0.3 < stats.pbo < 0.7  # a coin flip, not skill
    assert stats.dsr is not None and stats.dsr < 0.95
    assert stats.overfit is True
    assert stats.pbo_splits == 16 and stats.pbo_combinations == 12870


def test_a_real_edge_is_not_called_overfit() -> None:
    rng = np.random.default_rng(6)
    returns = rng.normal(0.0, 0.01, (250, 30))
    returns[:, 11] += 0.004
    stats = overfitting(returns)
    assert stats.pbo is not None and stats.pbo < 0.05
    assert stats.dsr is not None and stats.dsr > 0.99
    assert stats.overfit is False


def test_the_statistics_match_their_definitions_on_small_cases() -> None:
    # two trials, one always better in every block: never below the median out of sample
    better = np.tile([0.02, 0.01, 0.03, 0.015], 4)[:, None]
    worse = better - 0.01 + np.tile([0.001, -0.001], 8)[:, None]
    pbo, splits, combos, logits = pbo_cscv(np.hstack([better, worse]), splits=4)
    assert (pbo, splits, combos) == (0.0, 4, 6)
    assert np.allclose(logits, np.log(2.0))  # rank 2 of 2: omega = 2/3
    # SR0 grows with the number of trials and their spread
    a = expected_max_sharpe(np.array([0.0, 0.1, -0.1, 0.05]))
    b = expected_max_sharpe(np.linspace(-0.1, 0.1, 100))
    assert 0 < a < b


def test_a_sweep_on_noise_bars_reports_overfitting(
    noise: tuple[Path, list[str]], tmp_path: Path
) -> None:
    store, symbols = noise
    out = tmp_path / "noise"
    code = main(["optimize", "--store", str(store), "--symbols", ",".join(symbols),
                 "--start", "2024-01-04", "--end", "2024-02-05", "--param", "step=0.4:2.0:0.4",
                 "--param", "buffer=0.1,0.3,0.5", "--out", str(out), "--workers", "1",
                 "--no-report"])  # fmt: skip
    assert code == 0
    stats = json.loads((out / "overfitting.json").read_text())
    assert stats["trials"] == 15
    assert stats["overfit"] is True
    assert "likely overfit" in stats["verdict"]
    assert "likely overfit" in (out / "best.toml").read_text()

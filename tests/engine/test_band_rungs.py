"""The minute loop keeps each band's level as whole rungs (`band_bar_rungs`): the same
signals, references, levels and sides as the band on its level (`band_bar`), bar for bar."""

from __future__ import annotations

import numpy as np
import pytest

from momentumbot.strategy.band import band_bar, band_bar_rungs, band_update


@pytest.mark.parametrize(("step", "buffer"), [(1.0, 0.3), (0.3, 0.0), (0.7, 0.2), (2.5, 1.1)])
def test_rungs_walk_the_same_band_as_the_level(step: float, buffer: float) -> None:
    rng = np.random.default_rng(13)
    closes = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, 4000)))
    opens = np.roll(closes, 1)
    started = rng.random(closes.size) > 0.01  # now and then a new session
    started[0] = False
    ref, level, long = 0.0, 0.0, False
    r_ref, rungs, r_long = 0.0, 0, False
    signals = 0
    for m in range(closes.size):
        sig, ref, level, long = band_bar(
            bool(started[m]), ref, level, long, float(opens[m]), float(closes[m]), step, buffer
        )
        r_sig, r_ref, rungs, r_long = band_bar_rungs(
            bool(started[m]), r_ref, rungs, r_long, float(opens[m]), float(closes[m]), step,
            buffer,
        )  # fmt: skip
        assert (r_sig, r_ref, rungs * step, r_long) == (sig, ref, level, long)
        signals += abs(sig)
    assert signals > 20  # the walk crosses the band both ways


@pytest.mark.parametrize("step", [0.1, 0.3, 0.7, 1.0, 2.5])
def test_a_level_made_of_rungs_gives_them_back(step: float) -> None:
    for rungs in range(-5000, 5001):
        assert round(rungs * step / step) == rungs
    # band_update rounds the level it is given, as before: a close at the level keeps it
    close = 100.0 * (1.0 + 3 * step / 100.0)
    assert band_update(close, 100.0, 3 * step, True, step, 0.0) == (0, 3 * step, True)
    assert band_update(close, 100.0, 3 * step + 1e-12, True, step, 0.0)[1] == 3 * step

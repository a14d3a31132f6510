"""The momentum band, branch by branch, on hand-built closes (ref = 100, so move = close - 100)."""

from __future__ import annotations

import pytest

from momentumbot.strategy.band import band_update

STEP, BUF = 1.0, 0.3


def run(
    closes: list[float], step: float = STEP, buffer: float = BUF
) -> list[tuple[int, float, bool]]:
    level, long, out = 0.0, False, []
    for c in closes:
        sig, level, long = band_update(c, 100.0, level, long, step, buffer)
        out.append((sig, level, long))
    return out


def test_no_signal_inside_the_buffer() -> None:
    assert run([100.2, 100.3, 99.8]) == [(0, 0.0, False), (0, 0.0, False), (0, 0.0, False)]


def test_enter_above_level_plus_buffer_without_a_step() -> None:
    assert run([100.31]) == [(1, 0.0, True)]


def test_enter_and_step_up_in_the_same_bar() -> None:
    # move 1.5 > 0 + 0.3: enter; 1.5 >= 0 + 1: one step (never two in a bar)
    assert run([102.5]) == [(1, 1.0, True)]


def test_level_ratchets_one_step_per_bar() -> None:
    sig = run([103.0, 103.0, 103.0, 103.0])
    assert [s[1] for s in sig] == [1.0, 2.0, 3.0, 3.0]
    assert [s[0] for s in sig] == [1, 0, 0, 0]


def test_exit_below_level_minus_buffer_and_step_down() -> None:
    # up to level 2, then a drop to move 0.5: 0.5 < 2 - 0.3 -> exit; 0.5 <= 2 - 1 -> step down once
    sig = run([101.5, 102.5, 100.5])
    assert sig == [(1, 1.0, True), (0, 2.0, True), (-1, 1.0, False)]


def test_no_exit_within_the_buffer_below_the_level() -> None:
    sig = run([101.5, 100.8])  # level 1, move 0.8 > 1 - 0.3
    assert sig[-1] == (0, 1.0, True)


def test_exact_equality_is_not_a_breakout() -> None:
    # move == L + buffer is not > L + buffer; move == L goes to the else branch
    sig = run([100.5, 100.0], step=1.0, buffer=0.5)
    assert sig == [(0, 0.0, False), (0, 0.0, False)]


def test_step_down_when_flat_and_re_entry_from_a_lower_rung() -> None:
    sig = run([99.0, 98.0, 97.5, 98.0])
    # levels -1, -2, -2 (move -2.5 > -3), then move -2 > -2 is false -> else; no exit (flat)
    assert [s[1] for s in sig] == [-1.0, -2.0, -2.0, -2.0]
    sig = run([99.0, 98.0, 97.5, 97.8])  # -2.2 > -2? no
    assert all(s[0] == 0 for s in sig)
    sig = run([99.0, 98.0, 98.5])  # level -2, move -1.5 > -2 + 0.3 -> enter
    assert sig[-1] == (1, -2.0, True)


@pytest.mark.parametrize("step,buffer", [(0.5, 0.1), (2.0, 0.0)])
def test_parameters_are_respected(step: float, buffer: float) -> None:
    sig = run([100.0 + step + buffer + 0.01], step=step, buffer=buffer)
    assert sig == [(1, step, True)]


def test_decimal_thresholds_are_met_exactly_despite_binary_floats() -> None:
    # ref 5.00: 5.02 is +0.4 % (enter), 5.05 is exactly +1 % (one rung up), 5.03 is +0.6 %,
    # below 1 - 0.3 (exit). In binary floats 5.05 / 5.00 - 1 is 0.99999999999999645 %.
    level, long = 0.0, False
    out = []
    for c in (5.02, 5.05, 5.03):
        sig, level, long = band_update(c, 5.0, level, long, 1.0, 0.3)
        out.append((sig, level, long))
    assert out == [(1, 0.0, True), (0, 1.0, True), (-1, 1.0, False)]


def test_the_level_does_not_drift_over_many_rungs() -> None:
    level, long = 0.0, False
    for c in (100.3, 100.6, 100.9, 100.6, 100.3, 100.0):  # step 0.3: up three rungs, down three
        _, level, long = band_update(c, 100.0, level, long, 0.3, 0.0)
    assert level == 0.0
    # with buffer 0 a close equal to the reference is not a breakout
    sig, _, _ = band_update(100.0, 100.0, level, False, 0.3, 0.0)
    assert sig == 0

"""The simulated broker's fill model through the whole engine, on hand-built bars.

One symbol, a flat warm-up session (volume 10,000 a minute, so it is eligible from the
first allocation with budget 99,500 = equity - cash reserve); the band enters when the close
of minute 1 (09:31) is 100.5: 0.5 % above the session's first open, above the 0.3 % buffer.
Target = floor(99,500 / 100.5) = 990 shares, decided at 09:32.
"""

from __future__ import annotations

import pytest

from tests.engine.scenario import RUN, WARMUP, iso, minute_label, run, session_bars

ENTER = {1: 100.5}


def warm() -> list:
    return [session_bars(WARMUP)]


def test_fill_at_the_next_bars_open_with_slippage() -> None:
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes=ENTER)]})
    o = res.orders.iloc[0]
    assert (o.side, o.quantity, o.reason, o.decided_at) == (
        "BUY", 990, "enter", iso(minute_label(RUN[0], 2)),
    )  # fmt: skip
    f = res.fills.iloc[0]
    assert f.time == iso(minute_label(RUN[0], 2))  # the bar after the decision
    assert f.price == pytest.approx(100.5 + 0.01 + 100.5 * 1e-4)  # its open, moved against us
    assert f.commission == pytest.approx(990 * 0.005)
    assert f.slippage == pytest.approx(990 * (0.01 + 100.5 * 1e-4))


def test_volume_cap_gives_a_partial_fill_that_finishes_in_later_bars() -> None:
    vols = {i: 5000.0 for i in range(2, 390)}  # cap 500 shares a bar from 09:32
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes=ENTER, volumes=vols)]})
    buys = res.fills[res.fills.side == "BUY"]
    assert buys.quantity.tolist()[:2] == [500, 490]
    assert buys.time.tolist()[:2] == [iso(minute_label(RUN[0], 2)), iso(minute_label(RUN[0], 3))]
    # the order's cumulative commission is the formula over what it filled: 2.50 then 2.45
    assert buys.commission.tolist()[:2] == pytest.approx([2.5, 2.45])
    first = res.orders.iloc[0]
    assert (first.status, first.filled_quantity) == ("filled", 990)


def test_a_missing_bar_delays_the_fill_to_the_symbols_next_bar() -> None:
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes=ENTER, missing=[2, 3])]})
    assert res.fills.iloc[0].time == iso(minute_label(RUN[0], 4))
    # the missing minutes still get an equity row each (valued at the last close)
    assert len(res.equity) == 390


def test_cash_clamp_buys_what_cash_pays_for_and_keeps_the_rest_working() -> None:
    # the open gaps to 101: 990 shares would cost 100,009.90 > 100,000 cash
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes=ENTER, opens={2: 101.0})]})
    buys = res.fills[res.fills.side == "BUY"]
    first = buys.iloc[0]
    assert first.quantity == 989
    cost = first.quantity * first.price + first.commission
    assert cost <= 100_000 and cost + first.price > 100_000
    assert (res.equity.cash >= 0).all()


def test_flatten_is_exempt_from_the_volume_cap() -> None:
    # decided at 15:55 (close of 15:54, minute 384); fills in full at 15:55's open on volume 10
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes=ENTER, volumes={385: 10.0})]})
    flat = res.orders[res.orders.reason == "flatten"].iloc[0]
    assert flat.decided_at == iso(minute_label(RUN[0], 385))
    fill = res.fills[res.fills.order_id == flat.order_id]
    assert fill.quantity.tolist() == [990]
    assert fill.time.tolist() == [iso(minute_label(RUN[0], 385))]
    assert res.overnight_carries == 0
    assert res.final_positions == {"AAA": 0}


def test_no_bar_after_the_flatten_carries_it_to_the_next_sessions_first_bar() -> None:
    day1 = session_bars(RUN[0], closes=ENTER, missing=range(385, 390))
    day2 = session_bars(RUN[1], opens={0: 97.0})
    res = run({"AAA": [*warm(), day1, day2]}, end=RUN[1])
    flat = res.orders[res.orders.reason == "flatten"].iloc[0]
    fill = res.fills[res.fills.order_id == flat.order_id].iloc[0]
    assert fill.time == iso(minute_label(RUN[1], 0))
    assert fill.price == pytest.approx(97.0 - 0.01 - 97.0 * 1e-4)  # the gap is real
    assert res.overnight_carries == 1
    assert flat.status == "filled"


def test_a_flatten_still_working_when_the_run_ends_is_reported_working() -> None:
    day1 = session_bars(RUN[0], closes=ENTER, missing=range(385, 390))
    res = run({"AAA": [*warm(), day1]})
    flat = res.orders[res.orders.reason == "flatten"].iloc[0]
    assert flat.status == "working"
    assert res.overnight_carries == 1
    assert res.final_positions == {"AAA": 990}
    # the position is valued at its last close
    assert res.equity.positions_value.iloc[-1] == pytest.approx(990 * 100.5)


def test_no_buy_is_decided_inside_the_no_new_entries_window() -> None:
    # an enter signal at the close of 15:45 (decided 15:46) opens nothing; 15:43 (15:44) does
    late = run({"AAA": [*warm(), session_bars(RUN[0], closes={375: 100.5})]})
    assert late.orders.empty
    ok = run({"AAA": [*warm(), session_bars(RUN[0], closes={373: 100.5})]})
    assert ok.orders.iloc[0].reason == "enter"


def test_exit_signal_sells_the_whole_position() -> None:
    res = run({"AAA": [*warm(), session_bars(RUN[0], closes={1: 100.5, 10: 99.5})]})
    exit_ = res.orders[res.orders.reason == "exit"].iloc[0]
    assert (exit_.side, exit_.quantity) == ("SELL", 990)
    assert exit_.decided_at == iso(minute_label(RUN[0], 11))


def test_cost_filter_skips_small_opening_buys() -> None:
    # 2,400 USD of cash: budget 1,900, 18 shares at 100.5; commission 1.00 (the minimum)
    # is more than 5 bp of 1,809 (0.90)
    res = run(
        {"AAA": [*warm(), session_bars(RUN[0], closes=ENTER)]},
        portfolio={"initial_cash": 2_400.0},
    )
    o = res.orders.iloc[0]
    assert (o.reason, o.status, o.filled_quantity) == ("enter", "skipped", 0)
    assert res.fills.empty
    # with 5,000 USD the same buy (44 shares, 4,422 USD: 5 bp = 2.21 > 1.00) goes through
    res = run(
        {"AAA": [*warm(), session_bars(RUN[0], closes=ENTER)]},
        portfolio={"initial_cash": 5_000.0},
    )
    assert res.orders.iloc[0].status == "filled"

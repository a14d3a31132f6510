"""The gateway's exchange (SimBroker) without TCP: parity with the reference loop on many random
orders, and the order rules (limit, stop, IOC, modify, cancel, rejects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from momentumbot.config.schema import ExecutionConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.synthetic import generate_bars, synthetic_sessions
from momentumbot.domain.units import MICRO
from momentumbot.execution.costs import BUY, SELL, cost_params
from momentumbot.gateway.broker import Bar, Execution, OrderRejected, OrderRequest, SimBroker
from tests.gateway.reference import MINUTE, RefOrder, reference_fills

P = cost_params(ExecutionConfig())
SYMS = ["AAA", "BBB", "CCC"]


def _bars_by_label(frames: dict[str, pd.DataFrame]) -> dict[str, dict[int, Bar]]:
    out: dict[str, dict[int, Bar]] = {}
    for sym, df in frames.items():
        ts = (
            df["ts"]
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .to_numpy("datetime64[ns]")
            .view(np.int64)
        )
        out[sym] = {
            int(t): Bar(float(o), float(h), float(low), float(c), float(v))
            for t, o, h, low, c, v in zip(
                ts, df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True
            )
        }
    return out


def _replay(
    broker: SimBroker,
    orders: list[RefOrder],
    frames: dict[str, pd.DataFrame],
    sessions: pd.DatetimeIndex,
) -> None:
    """Drive the broker as the server does: orders arrive at their times, bars close in order."""
    grid = TradingCalendar("XNYS").grid(sessions)
    bars = _bars_by_label(frames)
    pending = sorted(orders, key=lambda o: (o.placed_ns, o.order_id))
    for k, label in enumerate(grid.label_ns.tolist()):
        if grid.minute[k] == 0:
            broker.on_session_open()
        while pending and pending[0].placed_ns < label + MINUTE:
            o = pending.pop(0)
            req = OrderRequest(
                1,
                o.order_id,
                o.symbol,
                "BUY" if o.side == BUY else "SELL",
                o.qty,
                "MKT",
                None,
                None,
                "DAY",
                "",
                "",
            )
            broker.place(req, o.placed_ns, session_open=True)
        here = {s: b[label] for s, b in bars.items() if label in b}
        t = pd.Timestamp(label, tz="UTC").tz_convert("America/New_York")
        broker.on_bar_close(label, here, (t.year, t.month))
        if label + MINUTE == int(grid.close_ns[grid.session[k]]):
            broker.on_session_close(label + MINUTE)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_fills_equal_the_reference_loop(seed: int) -> None:
    sessions = synthetic_sessions("2024-03-04", 2)
    frames = generate_bars(SYMS, sessions, seed=seed)
    grid = TradingCalendar("XNYS").grid(sessions)
    rng = np.random.default_rng(seed)
    # several orders land in the same minute; times inside the minute vary; ids rise with
    # placement time, as ib_async assigns them
    minutes = np.sort(rng.integers(0, grid.n_minutes - 5, 120))
    orders: list[RefOrder] = []
    for oid, k in enumerate(minutes.tolist(), start=1):
        placed = int(grid.label_ns[k]) + int(rng.integers(0, 60)) * 1_000_000_000
        placed = max(placed, orders[-1].placed_ns if orders else 0)
        side = BUY if rng.random() < 0.6 else SELL
        qty = int(rng.choice([10, 100, 500, 1500, 6000]))
        orders.append(RefOrder(oid, SYMS[int(rng.integers(0, 3))], side, qty, placed))
    cash = 100_000 * MICRO
    want, want_cash, want_pos = reference_fills(
        [RefOrder(**vars(o)) for o in orders], frames, sessions, cash, P
    )

    broker = SimBroker(["DU1"], 100_000, P)
    _replay(broker, orders, frames, sessions)
    got = [(f.order_id, f.bar_ns, f.qty, f.price, f.commission_micro) for f in broker.fills]
    assert got == [(f.order_id, f.bar_ns, f.qty, f.price, f.commission_micro) for f in want]
    assert len(got) > 50
    acct = broker.accounts["DU1"]
    assert acct.cash_micro == want_cash
    assert {s: p.qty for s, p in acct.positions.items() if p.qty} == {
        s: q for s, q in want_pos.items() if q
    }
    # the volume cap bit, and some buy was cut short by cash
    assert any(f.qty < o.qty for f in broker.fills for o in orders if o.order_id == f.order_id)
    assert acct.cash_micro >= 0


def _one_bar_broker() -> tuple[SimBroker, int]:
    b = SimBroker(["DU1"], 10_000, P)
    return b, 1_700_000_000 * 1_000_000_000 // MINUTE * MINUTE


def _req(
    order_id: int,
    action: str,
    qty: float,
    kind: str = "MKT",
    lmt: float | None = None,
    aux: float | None = None,
    tif: str = "DAY",
    ref: str = "",
) -> OrderRequest:
    return OrderRequest(1, order_id, "AAA", action, qty, kind, lmt, aux, tif, "", ref)


def test_limit_fills_only_when_the_open_with_slippage_is_inside_the_limit() -> None:
    b, t = _one_bar_broker()
    b.place(_req(1, "BUY", 10, "LMT", lmt=100.0), t, True)
    assert b.on_bar_close(t, {"AAA": Bar(100.0, 101, 99, 100, 10_000)}, (2023, 11)) == []
    ev = b.on_bar_close(t + MINUTE, {"AAA": Bar(99.5, 101, 99, 100, 10_000)}, (2023, 11))
    assert len(ev) == 1 and isinstance(ev[0], Execution)
    assert ev[0].fill.price == pytest.approx(99.5 + 0.01 + 99.5e-4)


def test_stop_triggers_on_touch_and_fills_at_the_next_open() -> None:
    b, t = _one_bar_broker()
    b.place(_req(1, "BUY", 10, "STP", aux=101.0), t, True)
    assert b.on_bar_close(t, {"AAA": Bar(100.0, 101.5, 99, 100, 10_000)}, (2023, 11)) == []
    assert b.orders[next(iter(b.orders))].triggered
    ev = b.on_bar_close(t + MINUTE, {"AAA": Bar(100.2, 101, 99, 100, 10_000)}, (2023, 11))
    assert isinstance(ev[0], Execution) and ev[0].fill.bar_ns == t + MINUTE
    # a gap through the stop fills at that open
    b.place(_req(2, "SELL", 10, "STP", aux=99.0), t + MINUTE, True)
    ev = b.on_bar_close(t + 2 * MINUTE, {"AAA": Bar(98.0, 99, 97, 98, 10_000)}, (2023, 11))
    assert isinstance(ev[0], Execution) and ev[0].fill.price == pytest.approx(98.0 - 0.01 - 98e-4)


def test_ioc_cancels_what_the_first_bar_leaves() -> None:
    b, t = _one_bar_broker()
    o, _ = b.place(_req(1, "BUY", 50, tif="IOC"), t, True)
    ev = b.on_bar_close(t, {"AAA": Bar(10.0, 10, 10, 10, 200)}, (2023, 11))
    assert [type(e).__name__ for e in ev] == ["Execution", "StatusChange"]
    assert o.filled == 20 and o.status == "Cancelled"


def test_modify_cancel_and_rejects() -> None:
    b, t = _one_bar_broker()
    o, modified = b.place(_req(1, "BUY", 10, "LMT", lmt=1.0), t, True)
    assert not modified
    o2, modified = b.place(_req(1, "BUY", 20, "LMT", lmt=2.0, ref="x"), t + MINUTE, True)
    assert modified and o2 is o and o.total_qty == 20 and o.lmt_price == 2.0 and o.order_ref == "x"
    with pytest.raises(OrderRejected) as e:
        b.place(_req(1, "SELL", 20, "LMT", lmt=2.0), t, True)
    assert e.value.code == 105
    b.cancel(1, 1, t)
    with pytest.raises(OrderRejected) as e:
        b.cancel(1, 1, t)
    assert e.value.code == 10148
    with pytest.raises(OrderRejected) as e:
        b.place(_req(1, "BUY", 20, "LMT", lmt=2.0), t, True)
    assert e.value.code == 104
    for bad in (
        _req(2, "BUY", 0),
        _req(3, "BUY", 1.5),
        _req(4, "HOLD", 1),
        _req(5, "BUY", 1, "LMT"),
    ):
        with pytest.raises(OrderRejected) as e:
            b.place(bad, t, True)
        assert e.value.code == 201
    with pytest.raises(OrderRejected) as e:
        b.place(_req(6, "BUY", 1, "MOC"), t, True)
    assert e.value.code == 387


def test_cap_exempt_orders_fill_in_full_even_at_zero_volume() -> None:
    b = SimBroker(["DU1"], 10_000, P, cap_exempt_ref_prefix="flatten")
    t = 1_700_000_000 * 1_000_000_000 // MINUTE * MINUTE
    b.accounts["DU1"].position("AAA").qty = 500
    b.accounts["DU1"].position("AAA").cost_micro = 500 * 10 * MICRO
    o, _ = b.place(_req(1, "SELL", 500, ref="flatten-2024-01-03"), t, True)
    b.on_bar_close(t, {"AAA": Bar(10.0, 10, 10, 10, 0)}, (2023, 11))
    assert o.status == "Filled" and b.accounts["DU1"].position("AAA").qty == 0


def test_insufficient_funds_check() -> None:
    b, t = _one_bar_broker()
    b.insufficient_funds_check = True
    b.last_close["AAA"] = 100.0
    b.place(_req(1, "BUY", 50), t, True)  # 5,000 of 10,000
    with pytest.raises(OrderRejected) as e:
        b.place(_req(2, "BUY", 60), t, True)  # 6,000 more than the 5,000 left
    assert e.value.code == 201
    assert "AVAILABLE FUNDS [5000.00 USD]" in e.value.text, "the working buy's 5,000 is committed"

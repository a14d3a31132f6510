"""The trading pieces on their own, without a gateway: the account guards, the minute
assembly, the run folder's lock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from momentumbot.config.schema import BrokerConfig, RiskConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.domain.units import NS, NS_PER_MINUTE
from momentumbot.execution.ib_broker import account_is_paper, port_is_live
from momentumbot.risk.limits import RiskLimits
from momentumbot.trading import guards
from momentumbot.trading.folder import RunFolder
from momentumbot.trading.minutes import MinuteAssembler

NO_LIMITS = RiskLimits.from_config(RiskConfig())


def test_live_needs_the_switches_and_the_limits() -> None:
    guards.check_config(BrokerConfig(), NO_LIMITS, live=False, live_port=port_is_live(7497))
    with pytest.raises(ConfigError, match="live = true"):
        guards.check_config(BrokerConfig(), NO_LIMITS, live=True, live_port=port_is_live(7496))
    with pytest.raises(ConfigError, match="account"):
        guards.check_config(
            BrokerConfig(live=True), NO_LIMITS, live=True, live_port=port_is_live(7496)
        )
    with pytest.raises(ConfigError, match=r"\[risk\] max_position_value"):
        guards.check_config(
            BrokerConfig(live=True, account="U1"),
            NO_LIMITS,
            live=True,
            live_port=port_is_live(7496),
        )


@pytest.mark.parametrize(
    ("accounts", "wanted", "live", "stored", "result"),
    [
        (["DU1"], "", False, None, "DU1"),
        (["DU1", "DU2"], "DU2", False, None, "DU2"),
        (["DU1", "DU2"], "", False, None, "set \\[broker\\] account"),
        (["DU1"], "DU9", False, None, "not an account of this connection"),
        (["U1"], "", False, None, "LIVE account; refusing"),
        (["DU1"], "DU1", True, None, "is a paper account"),
        (["U1"], "U1", True, "U1", "U1"),
        (["DU1"], "", False, "DU2", "trades account DU2"),
    ],
)
def test_the_account_traded(
    accounts: list[str], wanted: str, live: bool, stored: str | None, result: str, tmp_path: Path
) -> None:
    if result in accounts:
        assert (
            guards.choose_account(
                accounts,
                wanted,
                live=live,
                stored=stored,
                run_dir=tmp_path,
                is_paper=account_is_paper,
            )
            == result
        )
    else:
        with pytest.raises(ConfigError, match=result):
            guards.choose_account(
                accounts,
                wanted,
                live=live,
                stored=stored,
                run_dir=tmp_path,
                is_paper=account_is_paper,
            )


def test_a_minute_is_complete_when_every_bar_is_in_or_its_grace_is_over() -> None:
    t = 1_000 * NS_PER_MINUTE
    m = MinuteAssembler(["A", "B"], grace_ns=5 * NS, stale_ns=180 * NS)
    m.store("A", t, 10.0, 10.5, 100.0)
    assert not m.complete(t, t + NS_PER_MINUTE, session_open_ns=t)
    assert not m.complete(t, t + NS_PER_MINUTE + 4 * NS, session_open_ns=t)
    assert m.complete(t, t + NS_PER_MINUTE + 5 * NS, session_open_ns=t)  # B had no trade
    m.store("B", t, 20.0, 20.5, 50.0)
    # every symbol's bar is in, but mid-minute: they may be forming revisions (issue 11)
    assert not m.complete(t, t + 30 * NS, session_open_ns=t)
    assert m.complete(t, t + NS_PER_MINUTE + 5 * NS, session_open_ns=t)
    row = m.pop(t)
    assert row.seen.all() and np.allclose(row.c, [10.5, 20.5])
    # silent streams: past the grace but nothing alive for longer than stale_ns
    later = t + 10 * NS_PER_MINUTE
    assert not m.complete(later, later + NS_PER_MINUTE + 5 * NS, session_open_ns=t)
    m.mark_alive(later)
    assert m.complete(later, later + NS_PER_MINUTE + 5 * NS, session_open_ns=t)


def test_with_no_grace_a_later_bar_completes_a_minute() -> None:
    t = 1_000 * NS_PER_MINUTE
    m = MinuteAssembler(["A", "B"], grace_ns=0, stale_ns=180 * NS)
    m.store("A", t, 10.0, 10.5, 100.0)
    assert not m.complete(t, t + 30 * NS, session_open_ns=t)  # before its close
    assert m.complete(t, t + NS_PER_MINUTE, session_open_ns=t)  # at its close
    m.store("A", t + NS_PER_MINUTE, 10.5, 10.6, 100.0)
    assert m.complete(t, t + 30 * NS, session_open_ns=t)  # a later bar is in
    m.drop_before(t + NS_PER_MINUTE)
    assert list(m.pending) == [t + NS_PER_MINUTE]


def test_a_minute_closes_for_a_symbol_on_a_later_bar_of_it_or_the_clock_past_its_grace() -> None:
    """Forming bars: revisions of minute t (same label) replace the stored values and never
    complete it; a later bar of every symbol does, or the server clock at close + grace."""
    t = 1_000 * NS_PER_MINUTE
    m = MinuteAssembler(["A", "B"], grace_ns=2 * NS, stale_ns=180 * NS)
    for k, close in enumerate((10.1, 10.2, 10.3)):  # revisions 5, 10, 15 s in
        m.store("A", t, 10.0, close, 100.0 * (k + 1))
        m.store("B", t, 20.0, close + 10, 50.0 * (k + 1))
        assert not m.complete(t, t + 5 * (k + 1) * NS, session_open_ns=t)
    # the closed bars at the close: still not closed for the bot (the grace has not passed)
    m.store("A", t, 10.0, 10.4, 400.0)
    m.store("B", t, 20.0, 20.4, 200.0)
    assert not m.complete(t, t + NS_PER_MINUTE, session_open_ns=t)
    assert not m.complete(t, t + NS_PER_MINUTE + NS, session_open_ns=t)
    # a later bar of A closes t for A only; B's minute t is still open until the clock says
    m.store("A", t + NS_PER_MINUTE, 10.4, 10.5, 10.0)
    assert not m.complete(t, t + NS_PER_MINUTE + NS, session_open_ns=t)
    m.store("B", t + NS_PER_MINUTE, 20.4, 20.5, 10.0)
    assert m.complete(t, t + NS_PER_MINUTE + NS, session_open_ns=t)
    row = m.pop(t)
    assert np.allclose(row.c, [10.4, 20.4]) and np.allclose(row.v, [400.0, 200.0])
    # the clock alone: both bars of t + 1 are in, no later one; 2 s past its close closes it
    t1 = t + NS_PER_MINUTE
    assert not m.complete(t1, t1 + NS_PER_MINUTE + NS, session_open_ns=t)
    assert m.complete(t1, t1 + NS_PER_MINUTE + 2 * NS, session_open_ns=t)


def test_one_bot_per_run_folder(tmp_path: Path) -> None:
    first = RunFolder(tmp_path / "run")
    j = first.open()
    try:
        with pytest.raises(ConfigError, match="another momentumbot is trading in this folder"):
            RunFolder(tmp_path / "run").open()
    finally:
        j.close()
        first.close()
    again = RunFolder(tmp_path / "run")
    again.open().close()
    again.close()


def test_orders_are_held_while_the_connection_cannot_trade_and_released_in_order(
    tmp_path: Path,
) -> None:
    """The router without a gateway: a broker stub records what reaches it."""
    from momentumbot.config.schema import AppConfig
    from momentumbot.journal import journal as jr
    from momentumbot.trading.routing import OrderRouter

    class Broker:
        client_id = 7

        def __init__(self) -> None:
            self.sent: list[tuple[str, str, int, int]] = []

        def place(
            self, ref: str, sym: str, side: int, qty: int, limit_price: float | None = None
        ) -> int:
            self.sent.append(("place", ref, side, qty))
            return len(self.sent)

        def cancel(self, ref: str) -> bool:
            self.sent.append(("cancel", ref, 0, 0))
            return True

    class Orders:
        status = np.zeros(4, np.int8)  # all working

    class Engine:
        symbols = ("AAA",)
        orders = Orders()
        next_label = 0

        class st:
            last_close = np.array([10.0])

        def order_row(self, oid: int) -> tuple[str, int, int, str, int, str, int]:
            return ("AAA", 1 if oid % 2 == 0 else -1, 10 * (oid + 1), "enter", 0, "working", 0)

    j = jr.Journal.open(tmp_path / "j.sqlite", create=True)
    for oid in range(3):
        j.add_order(oid, f"enter:r:{oid}", "AAA", "BUY", 10, "enter", 0, jr.INTENT, order_type="MKT",
                    server_ns=0, detail="")  # fmt: skip
    up = {"v": False}
    broker = Broker()
    r = OrderRouter(
        journal=j, broker=broker, engine=Engine(), run_id="r",  # type: ignore[arg-type]
        cfg=AppConfig().broker, now_ns=lambda: 5, can_trade=lambda: up["v"],
        describe_connection=lambda: "disconnected",
    )  # fmt: skip
    r.dispatch([], [0, 1])
    r.cancel(0)  # cancelled while held: never sent
    assert broker.sent == [] and r.held == [("place", 1)] and r.state[0] == jr.LOST
    up["v"] = True
    r.release_held()
    r.dispatch([1], [2])
    assert broker.sent == [("place", "enter:r:1", -1, 20), ("cancel", "enter:r:1", 0, 0),
                           ("place", "enter:r:2", 1, 30)]  # fmt: skip
    assert (r.state[1], r.state[2], r.sends) == (jr.CANCEL_SENT, jr.SENT, 3)
    assert [e[1] for e in j.order_events(0)] == [jr.INTENT, "held", jr.LOST]
    j.close()

"""The trader's hook: a halt or a fatal stop recorded on the run state is sent, once."""

from __future__ import annotations

from momentumbot.config.loader import parse_config
from momentumbot.notify import build_notifier
from momentumbot.trading.run import RunState
from tests.notify.sink import AlertSink


def test_halts_and_the_fatal_stop_set_on_the_run_state_are_sent_once(sink: AlertSink) -> None:
    run = RunState()
    run.halted = "set before the notifier: not sent"
    run.alerts = build_notifier(parse_config({}), {"MOMENTUMBOT_NOTIFY_URLS": sink.url()})
    run.server_ns = 5  # any other field: nothing
    run.buys_halted = "3 sell rejects of AAA"
    run.buys_halted = "3 sell rejects of AAA"  # the same again: nothing
    run.halted = ""  # lifted: nothing
    run.halted = "daily loss limit: equity 15.20 USD below the session's first"
    run.fatal = "reconcile mismatch: AAA journal 10 broker 0"
    got = sink.wait_for(3)
    assert run.alerts.flush(20)
    assert [(r.title, r.message) for r in sink.received] == [
        ("momentumbot: new buys halted", "3 sell rejects of AAA"),
        ("momentumbot: halted: no new orders", "daily loss limit: equity 15.20 USD below the session's first"),
        ("momentumbot: trading stopped", "reconcile mismatch: AAA journal 10 broker 0"),
    ]  # fmt: skip
    assert [r.type for r in got] == ["warning", "warning", "failure"]
    run.alerts.close()

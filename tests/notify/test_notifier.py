"""The notifier against a real local HTTP server standing in for an Apprise JSON target."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from momentumbot.config.loader import parse_config
from momentumbot.notify import Event, Notifier, build_notifier
from tests.notify.sink import AlertSink


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def notifier(
    urls: str, clock: Any = None, env: dict[str, str] | None = None, **notify: Any
) -> Notifier:
    cfg = parse_config({"notify": notify, "data": {"alphavantage_api_key": "av-key-0123456789"}})
    kwargs = {"clock": clock} if clock is not None else {}
    return build_notifier(cfg, {"MOMENTUMBOT_NOTIFY_URLS": urls, **(env or {})}, **kwargs)


def test_alerts_arrive_once_each_at_every_target(sink: AlertSink, sink2: AlertSink) -> None:
    n = notifier(f"{sink.url('a')}, {sink2.url('b')}")
    n.context = "momentumbot paper run1"
    assert [t.service for t in n.targets] == ["JSON", "JSON"]
    assert n.event(Event.RUN_STARTED, "run started", "paper run1: trading 3 symbols")
    assert n.event(Event.HALTED, "halted", "daily loss limit", key="halt:daily")
    assert not n.event(Event.HALTED, "halted", "daily loss limit", key="halt:daily")  # duplicate
    assert n.flush(20)
    for s, path in ((sink, "/a"), (sink2, "/b")):
        got = s.wait_for(2)
        assert [(r.path, r.title) for r in got] == [
            (path, "momentumbot paper run1: run started"),
            (path, "momentumbot paper run1: halted"),
        ]
        assert got[0].message == "paper run1: trading 3 symbols" and got[1].type == "warning"
    assert n.sent == {1: 2, 2: 2} and n.limiter.duplicates == 1
    n.close()


def test_the_same_key_goes_again_after_the_window_and_the_cap_counts_what_it_held(
    sink: AlertSink,
) -> None:
    clock = FakeClock()
    n = notifier(sink.url(), clock, dedupe_minutes=10, max_per_minute=2)
    assert n.event(Event.SELL_REJECTED, "sell rejected", "AAA: 1", key="sell:AAA")
    assert n.event(Event.SELL_REJECTED, "sell rejected", "BBB: 1", key="sell:BBB")
    assert not n.event(Event.SELL_REJECTED, "sell rejected", "CCC: 1", key="sell:CCC")  # capped
    assert not n.event(Event.SELL_REJECTED, "sell rejected", "DDD: 1", key="sell:DDD")  # capped
    clock.t += 61
    assert not n.event(Event.SELL_REJECTED, "sell rejected", "AAA: 2", key="sell:AAA")  # dedupe
    assert n.event(Event.SELL_REJECTED, "sell rejected", "CCC: 2", key="sell:CCC")
    clock.t += 10 * 60
    assert n.event(Event.SELL_REJECTED, "sell rejected", "AAA: 3", key="sell:AAA")
    got = sink.wait_for(4)
    assert n.flush(20)
    assert [r.message.splitlines()[0] for r in sink.received] == [
        "AAA: 1",
        "BBB: 1",
        "CCC: 2",
        "AAA: 3",
    ]
    assert "2 earlier alert(s) held back by the rate limit" in got[2].message
    n.close()


def test_the_run_stopped_alert_is_never_capped(sink: AlertSink) -> None:
    n = notifier(sink.url(), FakeClock(), max_per_minute=1)
    assert n.event(Event.RUN_STARTED, "run started")
    assert not n.event(Event.HALTED, "halted", "x")
    assert n.event(Event.RUN_STOPPED, "run stopped", "done")
    assert [r.title for r in sink.wait_for(2)] == [
        "momentumbot: run started",
        "momentumbot: run stopped",
    ]
    n.close()


def test_only_the_configured_events_are_sent(sink: AlertSink) -> None:
    n = notifier(sink.url(), events=["halted"])
    assert not n.event(Event.RUN_STARTED, "run started")
    assert n.event(Event.HALTED, "halted", "daily loss")
    assert n.flush(20)
    assert [r.title for r in sink.wait_for(1)] == ["momentumbot: halted"]
    assert len(sink.received) == 1
    n.close()


def test_no_alert_and_no_log_line_holds_a_secret(
    sink: AlertSink, caplog: pytest.LogCaptureFixture
) -> None:
    url = sink.url("hook/SeCrEtToKeN4242")
    dash = "dash-token-987654321"
    n = notifier(url, env={"MOMENTUMBOT_DASHBOARD_TOKEN": dash})
    logging.getLogger("apprise").setLevel(logging.DEBUG)  # its debug lines quote the URL
    caplog.set_level(logging.DEBUG)
    try:
        n.event(
            Event.RECONCILE_MISMATCH, f"mismatch at {url}",
            f"token {dash}, key av-key-0123456789, path SeCrEtToKeN4242, "
            "https://user:hunter22@example.org/x",
        )  # fmt: skip
        got = sink.wait_for(1)
        assert n.flush(20)
    finally:
        logging.getLogger("apprise").setLevel(logging.WARNING)
    raw = got[0].raw
    for secret in ("SeCrEtToKeN4242", dash, "av-key-0123456789", "hunter22", url):
        assert secret not in raw
        assert secret not in caplog.text
    assert "***" in got[0].message and got[0].title.startswith("momentumbot: mismatch at ")
    assert any(r.name.startswith("apprise") for r in caplog.records)  # it did log, scrubbed
    n.close()


def test_a_hanging_target_does_not_delay_the_caller(sink: AlertSink, sink2: AlertSink) -> None:
    sink.mode = "hang"
    n = notifier(f"{sink.url()} {sink2.url()}", send_timeout_seconds=30)
    assert n.event(Event.RUN_STARTED, "run started")
    assert not sink.answered.is_set()  # returned before the server answered
    assert sink.entered.wait(20)  # the worker is now stuck in the hanging target
    assert n.event(Event.HALTED, "halted", "daily loss")
    assert n.event(Event.SELL_REJECTED, "sell rejected", "AAA")
    assert not sink.answered.is_set()  # both returned while it still hangs
    # the other target is not held by the hanging one
    titles = ["momentumbot: run started", "momentumbot: halted", "momentumbot: sell rejected"]
    assert [r.title for r in sink2.wait_for(3)] == titles
    assert not sink.answered.is_set() and len(sink.received) == 1
    sink.release.set()
    assert [r.title for r in sink.wait_for(3)] == titles
    n.close()


def test_a_failing_target_is_logged_once_and_counted(
    sink: AlertSink, sink2: AlertSink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.mode = "error"
    n = notifier(f"{sink.url()} {sink2.url()}")
    caplog.set_level(logging.INFO, logger="momentumbot.notify")
    for i in range(3):
        assert n.event(Event.SELL_REJECTED, "sell rejected", f"S{i}", key=f"s{i}")
    assert n.flush(20)
    assert len(sink2.wait_for(3)) == 3 and len(sink.received) == 3
    assert n.failed == {1: 3, 2: 0} and n.sent == {1: 0, 2: 3}
    lines = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert lines == [lines[0]] and "target 1 (JSON, json://)" in lines[0]
    sink.mode = "ok"
    assert n.event(Event.HALTED, "halted", "x")
    assert n.flush(20)
    assert "alerts: target 1 (JSON, json://) works again" in caplog.text
    n.close()


def test_a_full_queue_drops_the_oldest_and_counts(sink: AlertSink) -> None:
    sink.mode = "hang"
    n = notifier(sink.url(), queue_size=2, send_timeout_seconds=30, max_per_minute=50)
    assert n.event(Event.RUN_STARTED, "first")
    assert sink.entered.wait(20)  # the worker holds "first"; the rest queue
    for i in range(4):
        assert n.event(Event.SELL_REJECTED, f"s{i}", key=f"s{i}")
    assert n.dropped == 2
    sink.release.set()
    got = sink.wait_for(3)
    assert n.flush(20)
    assert [r.title for r in got] == ["momentumbot: first", "momentumbot: s2", "momentumbot: s3"]
    assert len(sink.received) == 3
    n.close()


def test_an_outage_longer_than_lost_minutes_is_sent_with_its_restore(sink: AlertSink) -> None:
    n = notifier(sink.url(), lost_minutes=0)
    n.link_lost("connectivity lost (1100)")
    n.link_lost("connectivity lost (1100)")  # the same outage
    got = sink.wait_for(1)
    n.link_back("1102")
    got = sink.wait_for(2)
    assert n.flush(20)
    assert [r.title for r in got] == [
        "momentumbot: connectivity lost",
        "momentumbot: connectivity restored",
    ]
    assert got[0].message.startswith("connectivity lost (1100); for ")
    assert got[1].message.startswith("back after ") and got[1].message.endswith("(1102)")
    assert len(sink.received) == 2
    n.close()


def test_a_short_outage_sends_nothing(sink: AlertSink) -> None:
    n = notifier(sink.url(), lost_minutes=10)
    n.link_lost("disconnected")
    n.link_back()
    assert n.event(Event.RUN_STOPPED, "run stopped")  # a marker: everything before it is out
    assert [r.title for r in sink.wait_for(1)] == ["momentumbot: run stopped"]
    assert n.flush(20)
    assert len(sink.received) == 1
    n.close()


def test_without_targets_it_is_off_and_starts_no_thread() -> None:
    n = build_notifier(parse_config({}), {})
    assert not n.enabled
    assert not n.event(Event.RUN_STARTED, "run started")
    n.link_lost("x")
    n.close()
    assert n.lanes == [] and n._lost_timer is None  # nothing to run a thread for
    assert not Notifier.off().enabled

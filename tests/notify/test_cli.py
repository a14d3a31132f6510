"""`momentumbot notify test` as a user runs it: a subprocess with the URLs in its environment."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.notify.sink import AlertSink


def notify_test(urls: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MOMENTUMBOT_NOTIFY_URLS"}
    if urls is not None:
        env["MOMENTUMBOT_NOTIFY_URLS"] = urls
    return subprocess.run(
        [sys.executable, "-m", "momentumbot", "notify", "test"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_it_sends_one_message_and_says_per_target_whether_it_went(
    sink: AlertSink, sink2: AlertSink
) -> None:
    sink2.mode = "error"
    url = sink.url("hook/TopSecretPath77")
    r = notify_test(f"{url},{sink2.url()}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "target 1 (JSON, json://): sent",
        "target 2 (JSON, json://): FAILED",
        "1 of 2 target(s) took the test message",
    ]
    got = sink.wait_for(1)
    assert len(got) == 1 and got[0].title == "momentumbot: test alert"
    assert "TopSecretPath77" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_none_configured_or_all_failed_exit_non_zero_with_one_line(sink: AlertSink) -> None:
    r = notify_test(None)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: no notification targets: set MOMENTUMBOT_NOTIFY_URLS to one or more Apprise "
        "URLs (see docs/notify.md)"
    )
    sink.mode = "error"
    r = notify_test(sink.url())
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["target 1 (JSON, json://): FAILED"]
    assert r.stderr.strip().startswith("error: the test message reached none of the 1 target(s)")
    assert len(r.stderr.strip().splitlines()) == 1

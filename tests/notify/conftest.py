from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notify.sink import AlertSink


@pytest.fixture
def sink() -> Iterator[AlertSink]:
    s = AlertSink().start()
    yield s
    s.stop()


@pytest.fixture
def sink2() -> Iterator[AlertSink]:
    s = AlertSink().start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own MOMENTUMBOT_NOTIFY_URLS must not receive the tests' alerts."""
    monkeypatch.delenv("MOMENTUMBOT_NOTIFY_URLS", raising=False)


# the IB log guard of the gateway tests (autouse there): the replayed-session test uses it
from tests.gateway.conftest import IbLogGuard, ib_log  # noqa: E402

__all__ = ["IbLogGuard", "ib_log"]

"""The monitor tests reuse the gateway tests' guard: a test fails when ib_async logs an error it
was not told to expect."""

from __future__ import annotations

from tests.gateway.conftest import IbLogGuard, ib_log

__all__ = ["IbLogGuard", "ib_log"]

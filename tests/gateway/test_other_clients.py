"""The unmodified ib_insync 0.9.86 (server version 176) and IB's official ibapi 10.x (178) against
the gateway over TCP: each runs a scripted session (tests/gateway/clients/) under
.venv-clients/bin/python (`make clients`; its own venv because ib_insync's eventkit and
ib_async's aeventkit install the same `eventkit/` folder) while the test runs the clock, and
reports what it received as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from momentumbot.gateway.server import GatewayServer
from tests.gateway.conftest import gateway, run
from tests.gateway.test_ib_client import ny, session_bars

ROOT = Path(__file__).resolve().parents[2]
CLIENT_VENV = ROOT / ".venv-clients"
SCRIPTS = Path(__file__).resolve().parent / "clients"
FARM_OK = {2104, 2106, 2158}


def client_python() -> Path:
    """The clients' venv; missing is a failure (run `make clients`) unless the user opted out."""
    exe = CLIENT_VENV / "bin" / "python"
    if sys.platform == "win32":
        exe = CLIENT_VENV / "Scripts" / "python.exe"
    if not exe.exists():
        if os.environ.get("MOMENTUMBOT_NO_CLIENT_VENV") == "1":
            pytest.skip("MOMENTUMBOT_NO_CLIENT_VENV=1: ib_insync/ibapi sessions not run")
        pytest.fail(
            f"{CLIENT_VENV} is missing: run `make clients` (ib_insync 0.9.86 and ibapi for "
            "these tests), or set MOMENTUMBOT_NO_CLIENT_VENV=1 to skip them"
        )
    return exe


async def run_client(srv: GatewayServer, script: str, python: Path) -> dict[str, Any]:
    """Run one client script against `srv`; once it streams, run the clock a minute at a time
    from 09:31 until the script is done. Its last stdout line is the result."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = await asyncio.create_subprocess_exec(
        str(python), str(SCRIPTS / script), str(srv.port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    ticking: asyncio.Task[None] | None = None

    async def tick() -> None:
        await srv.advance_to_time("09:31")
        while srv.now_ns() < pd.Timestamp(ny("2024-01-03", "12:00")).value:
            await asyncio.sleep(0.25)
            await srv.advance(60)

    lines: list[str] = []
    try:
        async with asyncio.timeout(150):
            while line := (await proc.stdout.readline()).decode():
                lines.append(line)
                if json.loads(line).get("event") == "subscribed" and ticking is None:
                    ticking = asyncio.ensure_future(tick())
            await proc.wait()
    finally:
        if ticking is not None:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode()
    assert lines, f"{script} printed nothing; stderr:\n{stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result.get("event") == "done", lines
    assert "failure" not in result, (
        f"{result['failure']}; logged: {result.get('log_errors')}\nstderr:\n{stderr}"
    )
    return result


def bar_rows(df: pd.DataFrame) -> list[list[Any]]:
    ts = (df["ts"].astype("int64") // 1_000_000_000).tolist()
    cols = [df[k].astype(float).tolist() for k in ("open", "high", "low", "close", "volume")]
    return [[t, *vals] for t, *vals in zip(ts, *cols, strict=True)]


@pytest.mark.parametrize(
    ("script", "version"), [("ib_insync_session.py", 176), ("ibapi_session.py", 178)]
)
def test_client_runs_a_scripted_session(
    script: str, version: int, source: Any, bar_frames: dict[str, Any]
) -> None:
    python = client_python()
    yesterday = bar_rows(session_bars(bar_frames, "AAPL", "2024-01-02"))
    first_today = bar_rows(session_bars(bar_frames, "AAPL", "2024-01-03"))[0]

    async def body() -> dict[str, Any]:
        async with gateway(source) as srv:
            r = await run_client(srv, script, python)
            # the what-if placed nothing: the market order and the cancelled limit order only
            orders = sorted(srv.broker.orders.values(), key=lambda o: o.perm_id)
            assert [(o.order_type, o.status) for o in orders] == [
                ("MKT", "Filled"),
                ("LMT", "Cancelled"),
            ]
            return r

    r = run(body())
    assert r["server_version"] == version
    assert len(r["history"]) == len(yesterday) > 300
    assert r["history"] == yesterday
    assert r["streamed"] == first_today  # the 09:30 bar, streamed when it closed
    assert r["what_if"]["commission"] > 0 and r["what_if"]["init_margin_change"] > 0
    fill = r["fill"]
    assert (fill["status"], fill["filled"], fill["shares"]) == ("Filled", 10.0, 10.0)
    assert fill["exec_ids"] and fill["report_exec_ids"] == fill["exec_ids"]
    assert fill["commission"] >= 1.0 and fill["avg_price"] > 0  # IB fixed: at least $1
    assert fill["order_ref"] in ("ins-1", "api-1")
    assert r["cancel"] == {"status": "Cancelled"}
    assert 202 in r["error_codes"]  # the cancel's "Order Canceled"
    assert set(r["error_codes"]) <= FARM_OK | {202}, r["error_codes"]
    assert r["log_errors"] == [], r["log_errors"]  # no decoder error, nothing else logged

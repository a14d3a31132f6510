"""`momentumbot dashboard RUN_DIR`: a finished run's dashboard served read-only by its own
process (real uvicorn, real HTTP): the same API, the token required, controls refused."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from momentumbot.cli import main
from tests.trade.fake_run import fake_run

TOKEN = "read-only-token-abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_run_folder_served_read_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    books: dict[str, object] = {}

    async def body() -> None:
        async with fake_run(out) as r:
            await r.run_to("11:00")
        e = r.trader.engine  # stopped: its final books
        assert e is not None
        books["positions"] = e.positions()

    asyncio.run(body())
    port = _free_port()
    env = {**os.environ, "MOMENTUMBOT_DASHBOARD_TOKEN": TOKEN}
    args = [sys.executable, "-m", "momentumbot.cli", "dashboard", str(out), "--port", str(port)]
    errors = tmp_path / "stderr.txt"
    with open(errors, "wb") as err:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 60
        while True:
            try:
                res = httpx.get(f"{url}/api/status", headers=auth, timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, errors.read_text()
                assert time.monotonic() < deadline, "the dashboard did not answer"
                time.sleep(0.2)
        assert res.status_code == 200
        status = res.json()
        assert status["controls"] is False and status["connection"] == "not running"
        assert status["state"] == "finished"
        positions = httpx.get(f"{url}/api/positions", headers=auth, timeout=5).json()
        assert {p["symbol"]: p["quantity"] for p in positions} == books["positions"]
        assert httpx.get(f"{url}/api/positions", timeout=5).status_code == 401
        refused = httpx.post(f"{url}/api/pause", headers=auth, timeout=5)
        assert refused.status_code == 409 and "read-only" in refused.json()["error"]
        page = httpx.get(url + "/", timeout=5).text
        assert "momentumbot" in page and TOKEN not in page
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_read_only_dashboard_needs_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOMENTUMBOT_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "MOMENTUMBOT_DASHBOARD_TOKEN" in err and "Traceback" not in err

"""docs/operating.md: the systemd unit it shows is one systemd accepts, and the exit codes it
lists are the errors' codes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "operating.md"
USER_HOME = "/home/trader/momentumbot"


def _unit() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"```ini\n# ~/.config/systemd/user/momentumbot.service\n(.*?)```", text, re.S)
    assert m, "docs/operating.md has the unit in an ini block"
    return m.group(1)


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="no systemd-analyze here"
)


def _verify(tmp_path: Path, unit_text: str) -> list[str]:
    """systemd-analyze's complaints about the unit (with its paths under tmp_path)."""
    home = tmp_path / "momentumbot"
    (home / ".venv" / "bin").mkdir(parents=True)
    exe = Path(sys.executable).parent / "momentumbot"
    assert exe.is_file(), "the momentumbot console script is installed"
    (home / ".venv" / "bin" / "momentumbot").symlink_to(exe)
    unit = tmp_path / "momentumbot.service"
    unit.write_text(unit_text.replace(USER_HOME, str(home)), encoding="utf-8")
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    said = [line for line in (res.stdout + res.stderr).splitlines() if unit.name in line]
    return said if res.returncode == 0 else [*said, f"exit {res.returncode}"]


@needs_systemd
def test_the_documented_systemd_unit_verifies(tmp_path: Path) -> None:
    assert _verify(tmp_path, _unit()) == []


@needs_systemd
def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    """The check above can fail: a bad restart setting is reported."""
    said = _verify(tmp_path, _unit().replace("Restart=on-failure", "Restart=sometimes"))
    assert any("restart specifier" in line for line in said), said


def test_the_exit_code_table_matches_the_errors() -> None:
    from momentumbot.app.trade import TradingHalted, TradingStopped
    from momentumbot.domain.errors import ConfigError, DataError, RetryLaterError
    from momentumbot.trading.resync import ResyncGaveUp
    from momentumbot.trading.supervisor import TaskFailed

    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|", text, re.M)
    table = {code: meaning for code, meaning, _ in rows}
    action = {code: what for code, _, what in rows}
    assert table["0"].startswith("done")
    for err, word in (
        (ConfigError, "configuration"),
        (DataError, "data"),
        (RetryLaterError, "unreachable"),
        (TradingStopped, "reconciliation"),
        (TaskFailed, "task failed"),
        (TradingHalted, "ended halted"),
        (ResyncGaveUp, "resync given up"),
    ):
        assert word in table[str(err.exit_code)], (err.__name__, table)
    prevent = re.search(r"^RestartPreventExitStatus=(.*)$", _unit(), re.M)
    assert prevent is not None
    # the unit restarts exactly on the codes the table says to restart on
    restart = {c for c, what in action.items() if "do not restart" not in what and c != "0"}
    assert set(prevent.group(1).split()) == set(table) - restart - {"0"}

"""The command line imports a subcommand's modules only when it runs; every subcommand is
still there for `--help`, for `from momentumbot.cli import app`, and when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from momentumbot.cli import main

SUBCOMMANDS = ("data", "report", "notify", "gateway", "trade", "stop", "status", "dashboard",
               "optimize", "backtest", "demo", "precompile", "config")  # fmt: skip


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f" {name} " in out, name


def test_the_app_has_every_subcommand() -> None:
    import typer.main

    from momentumbot.cli import app

    group = typer.main.get_command(app)
    assert set(SUBCOMMANDS) <= set(group.list_commands(None))  # type: ignore[attr-defined]


def test_config_show_does_not_import_the_other_subcommands() -> None:
    code = (
        "import sys; from momentumbot.cli import main; main(['config', 'show']); "
        "print(sorted(m for m in sys.modules if m.startswith(('momentumbot.gateway', "
        "'momentumbot.monitor', 'momentumbot.notify', 'momentumbot.optimize', 'aiohttp'))))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_a_lazy_subcommand_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--help"]) == 0
    assert "import" in capsys.readouterr().out

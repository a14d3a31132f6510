"""`momentumbot report RUN_DIR`, `report run RUN_DIR` and `report compare A B ...`."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentumbot.cli import main
from tests.reporting.conftest import Runs


def test_report_run_dir_writes_the_report(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    report = runs.one_session / "report.html"
    report.unlink(missing_ok=True)
    assert main(["report", str(runs.one_session)]) == 0
    assert report.is_file()
    assert (runs.one_session / "plots" / "equity.png").is_file()
    assert "report.html" in capsys.readouterr().out


def test_report_run_is_the_same_command(runs: Runs) -> None:
    report = runs.no_trades / "report.html"
    report.unlink(missing_ok=True)
    assert main(["report", "run", str(runs.no_trades)]) == 0
    assert report.is_file()


def test_report_compare(runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    code = main(["report", "compare", str(runs.full), str(runs.no_trades), "--out", str(out)])
    assert code == 0
    assert (out / "compare.html").is_file()
    printed = capsys.readouterr().out
    assert "Runs compared" in printed and "Sharpe ratio" in printed


def test_report_compare_defaults_beside_the_first_run(runs: Runs) -> None:
    assert main(["report", "compare", str(runs.full), str(runs.one_session)]) == 0
    assert (runs.full.parent / "compare-full-vs-one" / "compare.html").is_file()


def test_bad_run_folders_are_one_line_errors(
    tmp_path: Path, runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "absent")]) == 3
    assert main(["report", str(tmp_path)]) == 3
    assert main(["report", "compare", str(runs.full)]) == 3
    err = capsys.readouterr().err
    assert "no such folder" in err and "equity.csv" in err and "two run folders" in err
    assert "Traceback" not in err


def test_report_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert "RUN_DIR" in out and "compare" in out


def test_report_without_symbol_plots(runs: Runs) -> None:
    assert main(["report", str(runs.no_store), "--no-symbol-plots"]) == 0
    assert not list((runs.no_store / "plots" / "symbols").glob("*.png"))
    assert (runs.no_store / "report.html").is_file()
    assert main(["report", str(runs.no_store)]) == 0
    assert list((runs.no_store / "plots" / "symbols").glob("*.png"))

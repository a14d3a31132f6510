"""`momentumbot data ...` through the real entry point: exit codes, output, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from tests.data.conftest import file_state


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    code, out, _ = run(
        capsys, "data", "generate", "--symbols", "3", "--sessions", "2", "--store", str(store)
    )
    assert code == 0
    assert "NOT market data" in out and "SYN001" in out
    code, out, _ = run(capsys, "data", "list", "--store", str(store))
    assert code == 0
    for sym in ("SYN001", "SYN002", "SYN003"):
        assert sym in out
    assert "2024-01-02 09:30" in out
    code, out, _ = run(capsys, "data", "check", "--store", str(store))
    assert code == 0 and "OK (3 symbols" in out


def test_generate_symbol_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    code, _, _ = run(
        capsys,
        "data",
        "generate",
        "--symbol-list",
        "abc,XYZ",
        "--sessions",
        "1",
        "--store",
        str(store),
    )
    assert code == 0
    assert BarStore(store).symbols() == ["ABC", "XYZ"]


def test_list_empty_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "list", "--store", str(tmp_path))
    assert code == 0 and "no bars" in out


def test_import_alpha_vantage_and_reimport(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    files = [
        str(shared_data / "eqker_alphavantage_2019-02" / f"{s}_1min.csv.gz") for s in ("SPY", "UGA")
    ]
    code, out, err = run(
        capsys, "data", "import", *files, "--format", "alphavantage", "--store", str(store)
    )
    assert code == 0, err
    assert "SPY" in out and "UGA" in out and "2019-02-11 09:30" in out and "end" in out
    code, out, _ = run(
        capsys, "data", "import", *files, "--format", "alphavantage", "--store", str(store)
    )
    assert code == 0 and "1,950" in out  # SPY again: all unchanged
    assert BarStore(store).info("SPY").rows == 1950


def test_import_pyalgotrade_with_options(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_data / "pyalgotrade_spy_minute_2011" / "nt-spy-minute-2011.csv.gz"
    code, _, err = run(
        capsys, "data", "import", str(path), "--symbol", "SPY", "--tz", "UTC", "--label", "end",
        "--time-format", "%Y%m%d %H%M%S", "--store", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert BarStore(tmp_path).info("SPY").rows == 14_180


def test_malformed_csv_fails_with_one_line_and_store_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    good = tmp_path / "good.csv"
    good.write_text("timestamp,open,high,low,close,volume\n2024-01-02 09:30,10,11,9,10,100\n")
    assert (
        run(capsys, "data", "import", str(good), "--symbol", "ABC", "--store", str(store))[0] == 0
    )
    before = file_state(BarStore(store).path("ABC"))
    cases = {
        "nan.csv": "timestamp,open,high,low,close,volume\n2024-01-02 09:31,10,11,9,nan,100\n",
        "neg.csv": "timestamp,open,high,low,close,volume\n2024-01-02 09:31,-10,11,-11,10,100\n",
        "dup.csv": "timestamp,open,high,low,close,volume\n2024-01-02 09:31,10,11,9,10,1\n2024-01-02 09:31,10,11,9,10,1\n",
        "text.csv": "timestamp,open,high,low,close,volume\n2024-01-02 09:31,10,eleven,9,10,100\n",
        "cols.csv": "timestamp,open,high,low,close\n2024-01-02 09:31,10,11,9,10\n",
        "conflict.csv": "timestamp,open,high,low,close,volume\n2024-01-02 09:30,10,11,9,10.5,100\n",
    }
    for name, text in cases.items():
        bad = tmp_path / name
        bad.write_text(text)
        code, _, err = run(
            capsys, "data", "import", str(good), str(bad), "--symbol", "ABC", "--store", str(store)
        )
        assert code == 3, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert name in lines[0] and "line " in lines[0], err
    assert file_state(BarStore(store).path("ABC")) == before


def test_unknown_format_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("timestamp,open,high,low,close,volume\n2024-01-02 09:30,10,11,9,10,100\n")
    code, _, _ = run(capsys, "data", "import", str(good), "--format", "xml")
    assert code == 2


def test_bad_options_exit_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.csv"
    good.write_text("timestamp,open,high,low,close,volume\n2024-01-02 09:30,10,11,9,10,100\n")
    code, _, err = run(
        capsys,
        "data",
        "import",
        str(good),
        "--symbol",
        "ABC",
        "--tz",
        "Nowhere/Land",
        "--store",
        str(tmp_path),
    )
    assert code == 2 and "unknown time zone" in err
    code, _, err = run(
        capsys,
        "data",
        "import",
        str(tmp_path / "missing.csv"),
        "--symbol",
        "ABC",
        "--store",
        str(tmp_path),
    )
    assert code == 3 and "no such file" in err
    code, _, err = run(
        capsys, "data", "import", str(good), "--symbol", "bad symbol!", "--store", str(tmp_path)
    )
    assert code == 3 and "invalid symbol" in err
    code, _, err = run(capsys, "data", "generate", "--symbols", "0", "--store", str(tmp_path))
    assert code == 3 and "at least 1 symbol" in err

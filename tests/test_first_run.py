"""When a backtest runs its kernels as plain Python (`app.first_run`): MOMENTUMBOT_JIT, the
compiled-code cache and the run's size decide (the run folders' equality is in
tests/engine/test_cold_and_warm.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from momentumbot import compiled
from momentumbot.app import first_run
from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic
from momentumbot.domain.errors import ConfigError

SYMBOLS = default_symbols(3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    bars = BarStore(tmp_path_factory.mktemp("first-run") / "store")
    write_synthetic(bars, SYMBOLS, start="2024-01-02", n_sessions=10, seed=3)
    return bars


def _recorder(calls: list[bool]) -> Callable[[], bool]:
    def run_uncompiled() -> bool:
        calls.append(True)
        return True

    return run_uncompiled


@pytest.fixture
def switched(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records the switches to plain Python instead of making them (this process's kernels
    are compiled already), with an empty cache unless a test says otherwise."""
    calls: list[bool] = []
    monkeypatch.setattr(first_run, "run_uncompiled", _recorder(calls))
    monkeypatch.setattr(first_run, "has_cached_code", lambda module, name: False)
    monkeypatch.delenv("MOMENTUMBOT_JIT", raising=False)
    return calls


def test_the_estimate_counts_the_stored_minutes_of_the_run_dates(store: BarStore) -> None:
    rows = sum(store.info(s).rows for s in SYMBOLS)
    assert first_run.planned_bars(store, SYMBOLS, None, None) == rows
    # about half the sessions: about half the minutes, never fewer than the run has
    half = first_run.planned_bars(store, SYMBOLS, "2024-01-02", "2024-01-09")
    assert rows * 0.4 < half < rows * 0.75
    assert first_run.planned_bars(store, SYMBOLS, "2030-01-02", None) == 0
    assert first_run.planned_bars(store, ["NOPE"], None, None) == 0


def test_a_small_run_with_nothing_cached_goes_uncompiled(
    store: BarStore, switched: list[bool]
) -> None:
    bars = first_run.choose_uncompiled(store, SYMBOLS, None, None)
    assert bars == first_run.planned_bars(store, SYMBOLS, None, None) and switched == [True]


def test_a_large_run_or_a_filled_cache_compiles(
    store: BarStore, switched: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(first_run, "UNCOMPILED_MAX_BARS", 1000)
    assert first_run.choose_uncompiled(store, SYMBOLS, None, None) is None
    monkeypatch.undo()
    monkeypatch.setattr(first_run, "run_uncompiled", _recorder(switched))
    monkeypatch.setattr(first_run, "has_cached_code", lambda module, name: name == "run_minutes")
    assert first_run.choose_uncompiled(store, SYMBOLS, None, None) is None
    assert switched == []


def test_a_run_called_from_a_script_compiles(store: BarStore, switched: list[bool]) -> None:
    """In a process that goes on after the run (a script or a notebook calling main([...])),
    the switch would make every later run plain Python: it compiles."""
    assert first_run.choose_uncompiled(store, SYMBOLS, None, None, one_shot=False) is None
    assert switched == []


def test_the_cache_of_another_checkout_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numba files each source folder's code in a subfolder of the shared cache directory;
    only this checkout's counts (else a second clone would compile instead of running
    uncompiled). The subfolder is numba's own name for it."""
    from numba.core.caching import _CacheLocator

    from momentumbot.engine.kernel import loop

    monkeypatch.setattr(compiled, "CACHE_DIR", tmp_path)
    assert not compiled.has_cached_code("engine/kernel/loop.py", "run_minutes")
    other = tmp_path / f"kernel_{'0' * 40}"
    other.mkdir()
    (other / "loop.run_minutes-251.py311.nbi").touch()
    assert not compiled.has_cached_code("engine/kernel/loop.py", "run_minutes")
    mine = tmp_path / _CacheLocator.get_suitable_cache_subpath(loop.__file__)
    mine.mkdir()
    (mine / "loop.run_minutes-251.py311.nbi").touch()
    assert compiled.has_cached_code("engine/kernel/loop.py", "run_minutes")
    assert not compiled.has_cached_code("engine/kernel/loop.py", "_session_start")


def test_precompile_refuses_when_nothing_would_compile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOMENTUMBOT_JIT", "off")
    assert main(["precompile"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "MOMENTUMBOT_JIT=off" in err and "nothing would be compiled" in err


@pytest.mark.parametrize(("mode", "plain"), [("on", False), ("off", True), (" OFF ", True)])
def test_momentumbot_jit_decides_alone(
    store: BarStore, switched: list[bool], monkeypatch: pytest.MonkeyPatch, mode: str, plain: bool
) -> None:
    monkeypatch.setenv("MOMENTUMBOT_JIT", mode)
    assert first_run.choose_uncompiled(store, SYMBOLS, None, None) is None  # nothing to say
    assert switched == ([True] if plain else [])


def test_a_wrong_momentumbot_jit_is_a_clear_error(
    store: BarStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MOMENTUMBOT_JIT", "fast")
    with pytest.raises(ConfigError, match="MOMENTUMBOT_JIT='fast': use on, off or auto"):
        first_run.jit_mode()
    code = main(["backtest", "--store", str(store.root), "--symbols", ",".join(SYMBOLS)])
    assert code == 2
    err = capsys.readouterr().err
    assert "MOMENTUMBOT_JIT='fast'" in " ".join(err.split()) and "Traceback" not in err


def test_a_small_run_in_a_fresh_process_imports_no_compiled_kernel(
    store: BarStore, tmp_path: Path
) -> None:
    """The switch comes before any kernel module is imported, so it takes: the run's kernels
    are plain functions (what the decision module sees with an empty cache)."""
    code = (  # main() as the program runs it: its arguments in sys.argv
        "import sys; from momentumbot.cli import main; "
        f"sys.argv = ['momentumbot', 'backtest', '--store', {str(store.root)!r}, '--symbols', "
        f"{','.join(SYMBOLS)!r}, '--out', {str(tmp_path / 'run')!r}, '--no-report']; main(); "
        "from momentumbot.engine.kernel import loop; print(type(loop.run_minutes).__name__)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "MOMENTUMBOT_JIT")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # empty
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "function"
    assert "goes uncompiled" in " ".join(res.stderr.split())

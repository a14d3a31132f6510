"""Sweeps end to end: the best run re-run alone, reruns, the local pool, the outputs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.config.loader import load_config
from momentumbot.optimize.results import read_results
from momentumbot.reporting.metrics import FIGURE_NAMES
from tests.optimize.conftest import END, START

GRID = [
    "--param",
    "step=0.5,1.0,2.0",
    "--param",
    "buffer=0.1,0.3",
    "--param",
    "rebalance_minutes=5,30",
]


def sweep(store: Path, symbols: list[str], out: Path, *extra: str) -> int:
    return main(["optimize", "--store", str(store), "--symbols", ",".join(symbols),
                 "--start", START, "--end", END, "--out", str(out), *GRID, *extra])  # fmt: skip


def comparable(out: Path) -> pd.DataFrame:
    """results.csv without what depends on the machine (run time, worker), in key order."""
    table = read_results(out / "results.csv").drop(columns=["run_seconds", "worker"])
    return table.sort_values("key").reset_index(drop=True)


@pytest.fixture(scope="module")
def one_process(
    synthetic: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store, symbols = synthetic
    out = tmp_path_factory.mktemp("sweep") / "one"
    assert sweep(store, symbols, out, "--workers", "1") == 0
    return out


def test_best_config_rerun_with_backtest_gives_the_same_figures(
    one_process: Path, tmp_path: Path
) -> None:
    best = tomllib.loads((one_process / "best.toml").read_text())
    table = read_results(one_process / "results.csv")
    row = table[(table["step"] == best["strategy"]["step"])
                & (table["buffer"] == best["strategy"]["buffer"])
                & (table["rebalance_minutes"] == best["allocation"]["rebalance_minutes"])]  # fmt: skip
    assert len(row) == 1
    assert row["sharpe"].iloc[0] == table["sharpe"].max()
    run = tmp_path / "rerun"
    code = main(["backtest", "--config", str(one_process / "best.toml"), "--start", START,
                 "--end", END, "--out", str(run), "--no-report"])  # fmt: skip
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    for name in FIGURE_NAMES:
        mine, theirs = row[name].iloc[0], summary[name]
        if theirs is None:
            assert pd.isna(mine), name
        elif isinstance(theirs, str):
            assert mine == theirs, name
        else:
            assert round(float(mine), 2) == round(float(theirs), 2), name  # to the cent
            assert float(mine) == float(theirs), name  # and in fact exactly
    # the sweep's own copy of the best run agrees too
    assert (
        json.loads((one_process / "best" / "summary.json").read_text())["sharpe"]
        == summary["sharpe"]
    )


def test_outputs_are_written_and_linked(one_process: Path) -> None:
    table = read_results(one_process / "results.csv")
    assert len(table) == 12 and table["key"].is_unique
    assert {
        "step",
        "buffer",
        "rebalance_minutes",
        "run_seconds",
        "daily_returns",
        *FIGURE_NAMES,
    } <= set(table.columns)
    assert (table["run_seconds"] > 0).all()
    cfg = load_config(one_process / "best.toml")  # ready for backtest and trade
    assert cfg.symbols and Path(cfg.data.store).is_dir()
    assert "alphavantage_api_key" not in (one_process / "best.toml").read_text()
    pngs = sorted(p.name for p in (one_process / "heatmaps").glob("*.png"))
    assert pngs == [
        "buffer__rebalance_minutes.png",
        "step__buffer.png",
        "step__rebalance_minutes.png",
    ]
    over = json.loads((one_process / "overfitting.json").read_text())
    assert over["trials"] == 12 and 0.0 <= over["pbo"] <= 1.0 and 0.0 <= over["dsr"] <= 1.0
    html = (one_process / "summary.html").read_text()
    for link in ("results.csv", "best.toml", "best/report.html", "heatmaps/step__buffer.png"):
        assert f'href="{link}"' in html
    assert "<script src=" not in html and "Plotly.newPlot" in html  # self-contained
    assert (one_process / "best" / "report.html").is_file()


def test_rerun_skips_what_is_done(
    one_process: Path, synthetic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, symbols = synthetic
    before = (one_process / "results.csv").read_bytes()
    assert sweep(store, symbols, one_process, "--workers", "1", "--no-report") == 0
    assert "0 runs" in capsys.readouterr().out
    assert (one_process / "results.csv").read_bytes() == before


def test_local_pool_gives_the_one_process_table(
    one_process: Path, synthetic: tuple[Path, list[str]], tmp_path: Path
) -> None:
    store, symbols = synthetic
    out = tmp_path / "pool"
    assert sweep(store, symbols, out, "--workers", "2", "--no-report") == 0
    assert set(read_results(out / "results.csv")["worker"]) <= {"local-0", "local-1"}
    pd.testing.assert_frame_equal(comparable(out), comparable(one_process), check_exact=True)
    assert (out / "best.toml").read_text() == (one_process / "best.toml").read_text()


def test_a_folder_of_another_sweep_is_refused(
    one_process: Path, synthetic: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, symbols = synthetic
    code = main(["optimize", "--store", str(store), "--symbols", ",".join(symbols[:2]),
                 "--start", START, "--end", END, "--out", str(one_process), *GRID])  # fmt: skip
    assert code == 2
    assert "holds a sweep with a different symbols" in capsys.readouterr().err
